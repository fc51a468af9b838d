package server_test

import (
	"context"
	"testing"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/sdk"
)

// BenchmarkFleetRoleEvent measures how long a role change made on node A
// takes to reach a /v1/events subscriber on node B: A's transaction with
// its NOTIFY, B's LISTEN connection, B's lookup of the identity's
// certificates, the stream, and the SDK's parsing. One operation is one
// grant or revocation of a role, waited for.
func BenchmarkFleetRoleEvent(b *testing.B) {
	_, nodes := newFleet(b, 2)
	a, bn := nodes[0], nodes[1]
	admin, svc, api := a.service()
	person := a.enroll("person-phone", mtlsid.TokenDevice)
	ctx := context.Background()
	if err := a.auth.DefineRole(ctx, a.record(admin), svc.ID, "editor"); err != nil {
		b.Fatal(err)
	}
	got := bn.watch(b, api)
	actor := a.record(admin)
	want := sdk.Event{Kind: sdk.EventRoles, Serial: person.serial}
	grant := true
	for b.Loop() {
		var err error
		if grant {
			err = a.auth.GrantRole(ctx, actor, svc.ID, person.serial, "editor")
		} else {
			err = a.auth.RevokeRole(ctx, actor, svc.ID, person.serial, "editor")
		}
		if err != nil {
			b.Fatal(err)
		}
		grant = !grant
		wantEvent(b, got, "role change", want)
	}
}

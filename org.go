package mtlsid

import (
	"regexp"
	"time"
)

// OrgRole is a member's role in an organization. The strings are the
// reference's.
type OrgRole string

// The organization roles, strongest first.
const (
	OrgAdministrator OrgRole = "org. administrator"
	OrgManager       OrgRole = "org. manager"
	OrgMember        OrgRole = "member"
)

// Rank orders roles: administrator 3, manager 2, member 1, unknown 0.
func (r OrgRole) Rank() int {
	switch r {
	case OrgAdministrator:
		return 3
	case OrgManager:
		return 2
	case OrgMember:
		return 1
	}
	return 0
}

// Organization owns services and has members.
type Organization struct {
	ID        string // slug, unique
	Name      string
	Email     string
	CreatedAt time.Time
}

// Member is an identity's role in an organization.
type Member struct {
	OrgID      string
	IdentityID string
	Role       OrgRole
	CreatedAt  time.Time
}

var slugRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)

// CheckSlug validates an organization or service ID: 1 to 32 lower-case
// letters, digits and inner hyphens, so that it is a DNS label.
func CheckSlug(what, s string) error {
	if !slugRE.MatchString(s) {
		return Errorf(KindInvalid, "%s %q must be 1-32 lower-case letters, digits or inner hyphens", what, s)
	}
	return nil
}

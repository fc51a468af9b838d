// Package selfapi serves the self-authority API at /api/v1: one POST
// endpoint taking {"operation","args"} and answering {"error","result"},
// field for field as the reference's clients expect, so that they enroll
// and renew unchanged.
//
// The wire types (Request, Response, Args, results) stand alone in wire.go
// so clients can share them; the handler declares the few authority
// methods it calls. server assembles it; sdk uses the wire types.
package selfapi

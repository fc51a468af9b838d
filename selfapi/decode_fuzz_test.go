package selfapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
	"github.com/mtlsid/mtlsid/ca"
	"github.com/mtlsid/mtlsid/selfapi/wire"
)

// maxMessage bounds an error message, in bytes: messages say what was
// wrong, they never carry an unbounded piece of the input.
const maxMessage = 512

// FuzzDecodeRequest checks how a self-authority request is decoded, the
// way ServeHTTP does it: the envelope, then the arguments, then a CSR in
// them. Whatever the body:
//   - a body over wire.MaxBody is KindTooLarge, and only such a body;
//   - every other refusal is KindInvalid with a short, valid UTF-8
//     message;
//   - what is accepted is valid JSON, and the request and its arguments
//     re-encode to values that decode to the same thing;
//   - a CSR argument is either refused with KindInvalid or KindTooLarge,
//     or is a request ca.Issue can use.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"operation":"enroll","args":{"authorization":"mtid_x","agent-name":"a","csr":"AAAA"}}`,
		`{"operation":"enroll","args":{"csr":"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----"}}`,
		`{"operation":"enroll","args":{"csr":"MIIBAAAA_-"}}`,
		`{"operation":"renew_certificate","args":{"tentative":"yes","revoke-previous":1}}`,
		`{"operation":"create_token","args":{"purpose":"device","ttl":9223372036854775808}}`,
		`{"operation":"create_token","args":{"ttl":1e400}}`,
		`{"operation":"create_token","args":{"ttl":-0.5}}`,
		`{"operation":"add_domain","args":{"service":5,"domain":["x"]}}`,
		`{"operation":"get_active_identities","args":null}`,
		`{"operation":"revoke","args":[]}`,
		`{"operation":5}`, `{"operation":"x","args":"str"}`,
		`{"operation":"x","operation":"y"}`,
		`[]`, `null`, `"x"`, `{`, ``, "{\"operation\":\"\xff\"}",
		`{"operation":"create_token","args":{"ttl":` + strings.Repeat("9", 600) + `}}`,
	} {
		f.Add(false, []byte(s))
	}
	f.Add(true, []byte(`{}`))
	f.Add(true, []byte(``))
	f.Fuzz(func(t *testing.T, pad bool, body []byte) {
		if pad {
			// Leading whitespace keeps the meaning and puts a non-empty
			// body over the limit.
			body = append(bytes.Repeat([]byte{' '}, wire.MaxBody), body...)
		}
		req, err := decodeBody(body)
		if len(body) > wire.MaxBody {
			if mtlsid.ErrorKind(err) != mtlsid.KindTooLarge {
				t.Fatalf("%d-byte body: %v, want KindTooLarge", len(body), err)
			}
			return
		}
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", req, err)
		}
		req2, err := decodeBody(again)
		if err != nil {
			t.Fatalf("re-encoded request %s refused: %v", again, err)
		}
		if req2.Operation != req.Operation || !sameJSON(req.Args, req2.Args) {
			t.Fatalf("request round trip: %+v -> %+v", req, req2)
		}

		// The arguments, as ServeHTTP reads them.
		args := new(wire.Args)
		if len(req.Args) > 0 && !bytes.Equal(req.Args, []byte("null")) {
			if err := json.Unmarshal(req.Args, args); err != nil {
				checkRefusal(t, jsonError("args", err))
				return
			}
		}
		enc, err := json.Marshal(args)
		if err != nil {
			t.Fatal(err)
		}
		args2 := new(wire.Args)
		if err := json.Unmarshal(enc, args2); err != nil || !reflect.DeepEqual(args, args2) {
			t.Fatalf("args round trip: %+v -> %s -> %+v (%v)", args, enc, args2, err)
		}

		if args.CSR != "" {
			csr, err := ca.ParseCSR(authority.DecodeCSR(args.CSR))
			switch k := mtlsid.ErrorKind(err); {
			case err == nil:
				if ca.CheckPublicKey(csr.PublicKey) != nil || csr.CheckSignature() != nil {
					t.Fatalf("accepted a CSR whose key or signature does not check")
				}
			case k != mtlsid.KindInvalid && k != mtlsid.KindTooLarge:
				t.Fatalf("CSR error of kind %s: %v", k, err)
			default:
				checkMessage(t, err)
			}
		}
	})
}

// decodeBody runs decodeRequest on body as a POST.
func decodeBody(body []byte) (*wire.Request, error) {
	r := httptest.NewRequest(http.MethodPost, wire.Path, bytes.NewReader(body))
	return decodeRequest(httptest.NewRecorder(), r)
}

// checkRefusal fails unless err is a KindInvalid *mtlsid.Error with a
// short message.
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	var me *mtlsid.Error
	if !errors.As(err, &me) || me.Kind != mtlsid.KindInvalid {
		t.Fatalf("refusal is not a KindInvalid error: %#v", err)
	}
	checkMessage(t, err)
}

func checkMessage(t *testing.T, err error) {
	t.Helper()
	msg := mtlsid.ErrorMessage(err)
	if msg == "" || len(msg) > maxMessage || !utf8.ValidString(msg) {
		t.Fatalf("bad error message (%d bytes): %.200q", len(msg), msg)
	}
}

// sameJSON reports whether a and b are the same JSON value (both empty
// counts as the same: an absent "args").
func sameJSON(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	va, errA := decodeAny(a)
	vb, errB := decodeAny(b)
	return errA == nil && errB == nil && reflect.DeepEqual(va, vb)
}

func decodeAny(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

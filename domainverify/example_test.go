package domainverify_test

import (
	"fmt"

	"github.com/mtlsid/mtlsid/domainverify"
)

func ExampleRecordName() {
	fmt.Println(domainverify.RecordName("api.example.com"))
	fmt.Println(domainverify.WellKnownPath("TOKEN"))
	// Output:
	// _mtlsid-challenge.api.example.com
	// /.well-known/mtlsid-challenge/TOKEN
}

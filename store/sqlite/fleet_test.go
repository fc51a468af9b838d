package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/store/storetest"
)

func TestFleet(t *testing.T) {
	storetest.RunFleet(t, func(t *testing.T) mtlsid.Store {
		return openTest(t, filepath.Join(t.TempDir(), "mtlsid.db"))
	})
}

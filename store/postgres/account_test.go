package postgres

import (
	"testing"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/store/storetest"
)

func TestAccount(t *testing.T) {
	admin(t, testURL(t), `SELECT 1`) // skip or fail once, not in every subtest
	storetest.RunAccount(t, func(t *testing.T) mtlsid.Store { return openTest(t) })
}

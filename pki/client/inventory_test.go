package client

import (
	"testing"
	"time"
)

func TestAdminAudienceOK(t *testing.T) {
	names := []string{"ca.internal", "10.0.0.2"}
	for _, tc := range []struct {
		aud  string
		want bool
	}{
		{"https://ca.internal:9443" + InventoryPath, true},
		{"https://ca.internal" + InventoryPath, true},
		{"https://10.0.0.2:9443" + InventoryPath, true},
		{"http://ca.internal:9443" + InventoryPath, false},
		{"https://evil.internal:9443" + InventoryPath, false},
		{"https://ca.internal:9443" + ACMEEABPath, false}, // a token for another route
		{"https://ca.internal:9443" + InventoryPath + "/", false},
		{"https://ca.internal:9443/1.0/sign", false},
		{"https://ca.internal.evil:9443" + InventoryPath, false},
		{"https://user@ca.internal:9443" + InventoryPath, false},
		{"", false},
	} {
		if got := AdminAudienceOK(tc.aud, InventoryPath, names); got != tc.want {
			t.Errorf("AdminAudienceOK(%q) = %v, want %v", tc.aud, got, tc.want)
		}
	}
}

func TestInventoryFilterValidate(t *testing.T) {
	if err := (InventoryFilter{Name: "[a-"}).Validate(); err == nil {
		t.Error("malformed glob accepted")
	}
	if err := (InventoryFilter{Expiring: -time.Hour}).Validate(); err == nil {
		t.Error("negative --expiring accepted")
	}
	// Expired certificates are listed only with All, and never as expiring.
	now := time.Now()
	old := Issued{Serial: "1", Subject: "a", NotAfter: now.Add(-time.Minute)}
	if (InventoryFilter{}).Match(old, now) || !(InventoryFilter{All: true}).Match(old, now) ||
		(InventoryFilter{All: true, Expiring: time.Hour}).Match(old, now) {
		t.Error("expired certificate filtering")
	}
}

package firewalltest

import (
	"net/netip"
	"strings"
	"testing"

	"go4.org/netipx"
)

// TestNftSets: the three element forms of `nft -j` (address, prefix,
// range), in two sets of both families, read as one set; an unknown form
// is an error naming the set.
func TestNftSets(t *testing.T) {
	out := `{"nftables": [{"metainfo": {"json_schema_version": 1}},
	 {"table": {"family": "inet", "name": "t"}},
	 {"set": {"name": "v4", "elem": ["192.0.2.1", {"prefix": {"addr": "10.0.0.0", "len": 8}}, {"range": ["198.51.100.5", "198.51.100.9"]}]}},
	 {"set": {"name": "v6", "elem": [{"prefix": {"addr": "2001:db8::", "len": 32}}]}},
	 {"set": {"name": "empty"}}]}`
	got, err := NftSets([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	var b netipx.IPSetBuilder
	b.Add(netip.MustParseAddr("192.0.2.1"))
	b.AddPrefix(netip.MustParsePrefix("10.0.0.0/8"))
	b.AddRange(netipx.MustParseIPRange("198.51.100.5-198.51.100.9"))
	b.AddPrefix(netip.MustParsePrefix("2001:db8::/32"))
	want, _ := b.IPSet()
	if ok, diff := Equal(got, want); !ok {
		t.Errorf("NftSets: %s", diff)
	}
	_, err = NftSets([]byte(`{"nftables": [{"set": {"name": "bad", "elem": [{"concat": ["a", "b"]}]}}]}`))
	if err == nil || !strings.Contains(err.Error(), "set bad") {
		t.Errorf("element of unknown form: err %v, want an error naming set bad", err)
	}
}

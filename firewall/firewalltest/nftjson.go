package firewalltest

import (
	"encoding/json"
	"fmt"
	"net/netip"

	"go4.org/netipx"
)

// NftSets reads the output of `nft -j list table ...` and returns the
// addresses of all its sets together: the kernel's view, read
// independently of the nftables backend (a second opinion for tests).
func NftSets(out []byte) (*netipx.IPSet, error) {
	var doc struct {
		Nftables []struct {
			Set *struct {
				Name string            `json:"name"`
				Elem []json.RawMessage `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("nft -j: %w", err)
	}
	var b netipx.IPSetBuilder
	for _, o := range doc.Nftables {
		if o.Set == nil {
			continue
		}
		for _, e := range o.Set.Elem {
			r, err := NftElement(e)
			if err != nil {
				return nil, fmt.Errorf("nft -j: set %s: %w", o.Set.Name, err)
			}
			b.AddRange(r)
		}
	}
	return b.IPSet()
}

// NftElement reads one set element of nft's JSON: "addr", {"prefix":
// {addr, len}} or {"range": [from, to]}.
func NftElement(e json.RawMessage) (netipx.IPRange, error) {
	var s string
	if json.Unmarshal(e, &s) == nil {
		a, err := netip.ParseAddr(s)
		return netipx.IPRangeFrom(a, a), err
	}
	var o struct {
		Prefix *struct {
			Addr string `json:"addr"`
			Len  int    `json:"len"`
		} `json:"prefix"`
		Range []string `json:"range"`
	}
	if err := json.Unmarshal(e, &o); err != nil {
		return netipx.IPRange{}, fmt.Errorf("element %s: %w", e, err)
	}
	switch {
	case o.Prefix != nil:
		a, err := netip.ParseAddr(o.Prefix.Addr)
		if err != nil {
			return netipx.IPRange{}, err
		}
		return netipx.RangeOfPrefix(netip.PrefixFrom(a, o.Prefix.Len)), nil
	case len(o.Range) == 2:
		return netipx.ParseIPRange(o.Range[0] + "-" + o.Range[1])
	}
	return netipx.IPRange{}, fmt.Errorf("element %s: unknown form", e)
}

package main

// The wire check (`filter-diff -wire DIR`): aclc's compiled output read by Tailscale's own types.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"sort"

	"tailscale.com/tailcfg"
)

func strict(raw json.RawMessage, v any) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	return nil
}

func generic(b []byte) any {
	var x any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	d.Decode(&x)
	return x
}

// diff reports paths where the original differs from the re-encoding.
func diff(path string, a, b any, out *[]string) {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			*out = append(*out, fmt.Sprintf("%s: %T vs %T", path, a, b))
			return
		}
		for k, x := range av {
			y, ok := bv[k]
			if !ok {
				*out = append(*out, fmt.Sprintf("%s.%s: dropped (value %v)", path, k, short(x)))
				continue
			}
			diff(path+"."+k, x, y, out)
		}
		for k, y := range bv {
			if _, ok := av[k]; !ok {
				*out = append(*out, fmt.Sprintf("%s.%s: added on re-encode (%v)", path, k, short(y)))
			}
		}
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			*out = append(*out, fmt.Sprintf("%s: %v vs %v", path, short(a), short(b)))
			return
		}
		for i := range av {
			diff(fmt.Sprintf("%s[%d]", path, i), av[i], bv[i], out)
		}
	default:
		if !reflect.DeepEqual(a, b) {
			*out = append(*out, fmt.Sprintf("%s: %v vs %v", path, short(a), short(b)))
		}
	}
}

func short(x any) string {
	b, _ := json.Marshal(x)
	if len(b) > 80 {
		b = append(b[:80], "..."...)
	}
	return string(b)
}

type Node struct {
	PacketFilterRules json.RawMessage `json:"packet_filter_rules"`
	SSHRules          json.RawMessage `json:"ssh_rules"`
	Addresses         json.RawMessage `json:"addresses"`
	AllowedIPs        json.RawMessage `json:"allowed_ips"`
	PrimaryRoutes     json.RawMessage `json:"primary_routes"`
	CapMap            json.RawMessage `json:"cap_map"`
	Peers             map[string]struct {
		AllowedIPs    json.RawMessage `json:"allowed_ips"`
		PrimaryRoutes json.RawMessage `json:"primary_routes"`
		CapMap        json.RawMessage `json:"cap_map"`
	} `json:"peers"`
}

func checkField(file, node, field string, raw json.RawMessage, v any, issues map[string]int, examples map[string]string) {
	if len(raw) == 0 {
		return
	}
	if err := strict(raw, v); err != nil {
		k := field + ": DECODE " + err.Error()
		issues[k]++
		examples[k] = file + " " + node
		return
	}
	re, _ := json.Marshal(reflect.ValueOf(v).Elem().Interface())
	var ds []string
	diff(field, generic(raw), generic(re), &ds)
	for _, d := range ds {
		issues[d]++
		examples[d] = file + " " + node
	}
}

// checkWire strict-decodes every node of the `aclc compile` documents in dir (*.json) into
// Tailscale's types (tailcfg, netip), re-encodes each field and compares it with what aclc
// wrote: a field name Tailscale's types do not have, a value they refuse, or one they would
// change is reported. Returns the number of problems.
func checkWire(dir string) int {
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	issues := map[string]int{}
	examples := map[string]string{}
	nodes := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			issues["READ "+err.Error()]++
			continue
		}
		var doc struct {
			Nodes map[string]Node `json:"nodes"`
		}
		d := json.NewDecoder(bytes.NewReader(b))
		d.DisallowUnknownFields()
		if err := d.Decode(&doc); err != nil {
			issues["DOCUMENT "+err.Error()]++
			examples["DOCUMENT "+err.Error()] = filepath.Base(f)
			continue
		}
		base := filepath.Base(f)
		for name, n := range doc.Nodes {
			nodes++
			checkField(base, name, "packet_filter_rules", n.PacketFilterRules, &[]tailcfg.FilterRule{}, issues, examples)
			checkField(base, name, "ssh_rules", n.SSHRules, &[]*tailcfg.SSHRule{}, issues, examples)
			checkField(base, name, "addresses", n.Addresses, &[]netip.Prefix{}, issues, examples)
			checkField(base, name, "allowed_ips", n.AllowedIPs, &[]netip.Prefix{}, issues, examples)
			checkField(base, name, "primary_routes", n.PrimaryRoutes, &[]netip.Prefix{}, issues, examples)
			checkField(base, name, "cap_map", n.CapMap, &tailcfg.NodeCapMap{}, issues, examples)
			for pn, p := range n.Peers {
				checkField(base, name+"/"+pn, "peer.allowed_ips", p.AllowedIPs, &[]netip.Prefix{}, issues, examples)
				checkField(base, name+"/"+pn, "peer.primary_routes", p.PrimaryRoutes, &[]netip.Prefix{}, issues, examples)
				checkField(base, name+"/"+pn, "peer.cap_map", p.CapMap, &tailcfg.NodeCapMap{}, issues, examples)
			}
		}
	}
	keys := make([]string, 0, len(issues))
	problems := 0
	for k, n := range issues {
		keys = append(keys, k)
		problems += n
	}
	sort.Strings(keys)
	fmt.Printf("wire: %d documents, %d nodes decoded strictly into tailcfg types, %d problems\n", len(files), nodes, problems)
	for _, k := range keys {
		fmt.Printf("  %6d  %s   e.g. %s\n", issues[k], k, examples[k])
	}
	return problems
}

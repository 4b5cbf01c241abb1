// filter-diff: the Tailscale client's packet filter (tailscale.com/wgengine/filter, at the
// version go.mod pins) as an oracle for aclc-matcher. Reads cases (JSON lines: a filter as
// the control server sends it, the node's addresses and routes, which sources hold which
// capabilities, outbound flows that open the flow cache, inbound flows and capability
// questions) on standard input and writes one verdict line per case, as the client decides:
// each flow built as a real packet, decoded by the client's decoder and run through RunIn.
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"

	"go4.org/netipx"
	"tailscale.com/net/packet"
	"tailscale.com/tailcfg"
	"tailscale.com/wgengine/filter"
)

// Flow is one packet: "first" is a TCP SYN, a UDP or SCTP datagram, an ICMP echo request
// or another protocol's packet; "tcp" a TCP segment with Flags; "icmp" an ICMP message of
// IType and ICode.
type Flow struct {
	Src   string `json:"src"`
	Dst   string `json:"dst"`
	Proto int    `json:"proto"`
	Sport int    `json:"sport"`
	Dport int    `json:"dport"`
	Pkt   string `json:"pkt"`
	Flags int    `json:"flags"`
	IType int    `json:"itype"`
	ICode int    `json:"icode"`
}

// Case is one node's filter and the traffic it meets.
type Case struct {
	ID     string      `json:"id"`
	Filter string      `json:"filter"`
	Addrs  []string    `json:"addrs"`
	Routes []string    `json:"routes"`
	Caps   [][2]string `json:"caps"`
	Out    []Flow      `json:"out"`
	Flows  []Flow      `json:"flows"`
	CapQ   [][2]string `json:"capq"`
}

// Result: the document's decoding error, or per flow "D" (dropped), "A-" (accepted without
// a rule: a reply, an ICMP error, TSMP, a non-SYN TCP segment), "AC" (accepted by the flow
// cache only) or "A<n>", n the rule the client stops at; and per capability question the
// capabilities with their values as raw JSON.
type Result struct {
	ID      string                `json:"id"`
	JSONErr string                `json:"jsonerr,omitempty"`
	V       []string              `json:"v"`
	Caps    []map[string][]string `json:"caps"`
}

func buildPacket(f Flow) []byte {
	src := netip.MustParseAddr(f.Src)
	dst := netip.MustParseAddr(f.Dst)
	var tr []byte
	switch f.Proto {
	case 6:
		tr = make([]byte, 20)
		binary.BigEndian.PutUint16(tr[0:], uint16(f.Sport))
		binary.BigEndian.PutUint16(tr[2:], uint16(f.Dport))
		tr[12] = 0x50
		tr[13] = 0x02 // SYN
		if f.Pkt == "tcp" {
			tr[13] = byte(f.Flags)
		}
	case 17, 132:
		tr = make([]byte, 12)
		binary.BigEndian.PutUint16(tr[0:], uint16(f.Sport))
		binary.BigEndian.PutUint16(tr[2:], uint16(f.Dport))
		if f.Proto == 17 {
			binary.BigEndian.PutUint16(tr[4:], 12)
		}
	case 1, 58:
		tr = make([]byte, 8)
		switch {
		case f.Pkt == "icmp":
			tr[0], tr[1] = byte(f.IType), byte(f.ICode)
		case f.Proto == 58 && src.Is6():
			tr[0] = 128 // echo request
		default:
			tr[0] = 8 // echo request
		}
	}
	body := append(tr, make([]byte, 32)...)
	if src.Is4() {
		h := make([]byte, 20)
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:], uint16(20+len(body)))
		h[8] = 64
		h[9] = byte(f.Proto)
		s4, d4 := src.As4(), dst.As4()
		copy(h[12:], s4[:])
		copy(h[16:], d4[:])
		return append(h, body...)
	}
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(body)))
	h[6] = byte(f.Proto)
	h[7] = 64
	s6, d6 := src.As16(), dst.As16()
	copy(h[8:], s6[:])
	copy(h[24:], d6[:])
	return append(h, body...)
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "-wire" {
		if checkWire(os.Args[2]) > 0 {
			os.Exit(1)
		}
		return
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<30)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	logf := func(string, ...any) {}
	for in.Scan() {
		var c Case
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			fmt.Fprintln(os.Stderr, "filter-diff: a case is not JSON:", err)
			os.Exit(2)
		}
		res := Result{ID: c.ID, V: []string{}, Caps: []map[string][]string{}}
		var rules []tailcfg.FilterRule
		if err := json.Unmarshal([]byte(c.Filter), &rules); err != nil {
			res.JSONErr = err.Error()
			enc.Encode(res)
			continue
		}
		// A conversion error (a bad entry) leaves the rest in force, as in the client.
		mm, _ := filter.MatchesFromFilterRules(rules)
		var sb netipx.IPSetBuilder
		for _, a := range c.Addrs {
			sb.Add(netip.MustParseAddr(a))
		}
		for _, r := range c.Routes {
			sb.AddPrefix(netip.MustParsePrefix(r))
		}
		local, _ := sb.IPSet()
		held := map[netip.Addr]map[string]bool{}
		for _, kv := range c.Caps {
			a := netip.MustParseAddr(kv[0])
			if held[a] == nil {
				held[a] = map[string]bool{}
			}
			held[a][kv[1]] = true
		}
		capTest := func(ip netip.Addr, cap tailcfg.NodeCapability) bool {
			return held[ip][string(cap)]
		}
		node := filter.New(mm, capTest, local, nil, nil, logf)
		// Filters of the first k rules, without the flow cache's history: which rule the
		// client stops at is the least k whose filter accepts (rules only add access).
		prefixes := map[[2]int]*filter.Filter{}
		accepts := func(b []byte, k int, withCaps bool) bool {
			key := [2]int{k, 0}
			ct := capTest
			if !withCaps {
				key[1], ct = 1, nil
			}
			f, ok := prefixes[key]
			if !ok {
				f = filter.New(mm[:k], ct, local, nil, nil, logf)
				prefixes[key] = f
			}
			var q packet.Parsed
			q.Decode(b)
			return f.RunIn(&q, 0) == filter.Accept
		}
		least := func(b []byte, withCaps bool) int {
			lo, hi := 0, len(mm) // accepts(lo) is false, accepts(hi) true
			for hi-lo > 1 {
				mid := (lo + hi) / 2
				if accepts(b, mid, withCaps) {
					hi = mid
				} else {
					lo = mid
				}
			}
			return hi - 1
		}
		for _, f := range c.Out {
			var q packet.Parsed
			q.Decode(buildPacket(f))
			node.RunOut(&q, 0)
		}
		for _, f := range c.Flows {
			b := buildPacket(f)
			var q packet.Parsed
			q.Decode(b)
			switch {
			case node.RunIn(&q, 0) != filter.Accept:
				res.V = append(res.V, "D")
			case accepts(b, 0, true):
				res.V = append(res.V, "A-")
			case !accepts(b, len(mm), true):
				res.V = append(res.V, "AC")
			default:
				// ICMP: the client looks for an address match in every rule before a
				// capability match (matchIPsOnly), so it stops at the least rule that
				// accepts without capabilities, if any.
				src := netip.MustParseAddr(f.Src)
				icmp := (f.Proto == 1 && src.Is4()) || (f.Proto == 58 && src.Is6())
				if icmp && accepts(b, len(mm), false) {
					res.V = append(res.V, fmt.Sprintf("A%d", least(b, false)))
				} else {
					res.V = append(res.V, fmt.Sprintf("A%d", least(b, true)))
				}
			}
		}
		for _, q := range c.CapQ {
			m := node.CapsWithValues(netip.MustParseAddr(q[0]), netip.MustParseAddr(q[1]))
			o := map[string][]string{}
			for k, vals := range m {
				raw := []string{}
				for _, v := range vals {
					raw = append(raw, string(v))
				}
				o[string(k)] = raw
			}
			res.Caps = append(res.Caps, o)
		}
		enc.Encode(res)
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "filter-diff:", err)
		os.Exit(2)
	}
}

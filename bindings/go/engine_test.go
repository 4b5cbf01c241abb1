package aclc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func changed(cs *ChangeSet) map[string]NodeChange {
	out := map[string]NodeChange{}
	for _, c := range cs.Changed {
		out[c.Name] = c
	}
	return out
}

func TestEngineEvents(t *testing.T) {
	ctx := context.Background()
	rt, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	policy, inventory := read(t, examplePolicy), read(t, exampleInv)

	if _, err := rt.NewEngine(ctx, read(t, exampleBroken), inventory, EngineOptions{Inventory: true}); err == nil {
		t.Fatal("an invalid policy started an engine")
	} else if e := (*Error)(nil); !errors.As(err, &e) || e.Kind != "refused" || len(e.Diagnostics) == 0 {
		t.Fatalf("want a refusal with diagnostics, got %v", err)
	}

	engine, err := rt.NewEngine(ctx, policy, inventory, EngineOptions{Inventory: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(engine.Nodes) != 7 || engine.Nodes[0] != (EngineNode{1, "alice-laptop"}) {
		t.Fatalf("nodes: %+v", engine.Nodes)
	}

	bob := uint64(2)
	dave := NodeRecord{ID: 100, Name: "dave-laptop", User: &bob, IPv4: "100.64.3.1", IPv6: "fd7a:115c:a1e0::3:1"}
	cs, err := engine.Apply(ctx, UpsertNode{dave})
	if err != nil {
		t.Fatal(err)
	}
	got := changed(cs)
	if c, ok := got["dave-laptop"]; !ok || !c.Added || len(c.Parts) != 5 || cs.Snapshot != 1 {
		t.Fatalf("join: %+v", cs)
	}
	if c, ok := got["bob-laptop"]; !ok || c.Added {
		t.Fatalf("join: bob's own devices should change: %+v", cs)
	}
	// The same node again changes nothing.
	if cs, err := engine.Apply(ctx, UpsertNode{dave}); err != nil || !cs.Empty() || cs.Snapshot != 1 {
		t.Fatalf("repeat: %+v %v", cs, err)
	}

	// Retag: dave's laptop becomes a web server.
	retagged := dave
	retagged.User, retagged.Tags = nil, []string{"tag:web"}
	cs, err = engine.Apply(ctx, UpsertNode{retagged})
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := changed(cs)["dave-laptop"]; !ok || c.Added {
		t.Fatalf("retag: %+v", cs)
	}
	byID, err := engine.Map(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	byName, err := engine.MapByName(ctx, "dave-laptop")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(byID, byName) || !strings.Contains(string(byID), "packet_filter_rules") {
		t.Fatalf("maps differ or are not maps: %s / %s", byID, byName)
	}

	// A duplicate name is refused and changes nothing.
	dup := retagged
	dup.ID, dup.IPv4, dup.IPv6 = 101, "100.64.3.2", "fd7a:115c:a1e0::3:2"
	var e *Error
	if _, err := engine.Apply(ctx, UpsertNode{dup}); !errors.As(err, &e) || e.Kind != "invalid_tailnet" {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := engine.Apply(ctx, SetOnline{Node: 999}); !errors.As(err, &e) || e.Kind != "unknown_node" {
		t.Fatalf("unknown node: %v", err)
	}

	// A batch: erin joins and leaves within it, so the change set does not name her; a batch
	// with an unknown user is refused whole, and says which event.
	erin := NodeRecord{ID: 102, Name: "erin-laptop", User: &bob, IPv4: "100.64.3.3", IPv6: "fd7a:115c:a1e0::3:3"}
	cs, err = engine.ApplyBatch(ctx, []Event{UpsertNode{erin}, RemoveNode{102}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := changed(cs)["erin-laptop"]; ok || len(cs.Removed) != 0 {
		t.Fatalf("batch: %+v", cs)
	}
	ghost := uint64(99)
	stray := NodeRecord{ID: 103, Name: "stray", User: &ghost, IPv4: "100.64.3.4", IPv6: "fd7a:115c:a1e0::3:4"}
	if _, err := engine.ApplyBatch(ctx, []Event{RemoveNode{100}, UpsertNode{stray}}); !errors.As(err, &e) ||
		e.Kind != "unknown_user" || !strings.HasPrefix(e.Message, "events[1]: ") {
		t.Fatalf("refused batch: %v", err)
	}

	// Leave.
	cs, err = engine.Apply(ctx, RemoveNode{100})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.Removed) != 1 || cs.Removed[0] != (EngineNode{100, "dave-laptop"}) {
		t.Fatalf("leave: %+v", cs)
	}
	if _, err := engine.Map(ctx, 100); !errors.As(err, &e) || e.Kind != "unknown_node" {
		t.Fatalf("map of a node that left: %v", err)
	}

	// Policy replace: engineers reach the web servers on 443 only; the web servers' filters
	// change.
	cs, err = engine.Apply(ctx, ReplacePolicy{Policy: strings.Replace(policy, `"tag:web:80,443"`, `"tag:web:443"`, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := changed(cs)["web-1"]; !ok || len(c.Parts) == 0 || c.Parts[0] != "packet_filter" {
		t.Fatalf("policy replace: %+v", cs)
	}
	// A policy whose tests fail is refused; the maps stay.
	before, _ := engine.MapByName(ctx, "db-1")
	failing := strings.Replace(policy, `{"action": "accept", "src": ["group:ops"], "dst": ["*:*"]},`, "", 1)
	if _, err := engine.Apply(ctx, ReplacePolicy{Policy: failing}); !errors.As(err, &e) || e.Kind != "refused" {
		t.Fatalf("failing policy: %v", err)
	}
	after, _ := engine.MapByName(ctx, "db-1")
	if !bytes.Equal(before, after) {
		t.Fatal("a refused policy changed a map")
	}

	// Questions.
	if yes, err := engine.MayApplyTag(ctx, 3, "tag:web"); err != nil || !yes {
		t.Fatalf("carol may apply tag:web: %v %v", yes, err)
	}
	if yes, err := engine.MayApplyTag(ctx, 2, "tag:web"); err != nil || yes {
		t.Fatalf("bob may not apply tag:web: %v %v", yes, err)
	}
	ssh, err := engine.SSHDecision(ctx, 3, 4, "root")
	if err != nil {
		t.Fatal(err)
	}
	if ssh.Action != "check" || ssh.CheckPeriod != "12h0m0s" || ssh.Rule == nil || ssh.Rule.Index != 0 || ssh.Rule.Line == 0 {
		t.Fatalf("ssh: %+v", ssh)
	}
	raw, err := engine.Query(ctx, "explain_flow", map[string]any{"src": "alice-laptop", "dst": "web-1", "port": 443})
	if err != nil {
		t.Fatal(err)
	}
	var flow Explanation
	if err := json.Unmarshal(raw, &flow); err != nil || !flow.Allowed || len(flow.Rules) == 0 {
		t.Fatalf("explain_flow: %s %v", raw, err)
	}
	if _, err := engine.Query(ctx, "nonsense", nil); !errors.As(err, &e) || e.Kind != "bad_request" {
		t.Fatalf("unknown question: %v", err)
	}

	if err := engine.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := engine.Close(ctx); err != nil {
		t.Fatalf("closing an engine twice: %v", err)
	}
	if _, err := engine.Map(ctx, 1); !errors.As(err, &e) || e.Kind != "unknown_handle" {
		t.Fatalf("after Close: %v", err)
	}
}

func TestEngineState(t *testing.T) {
	state := `{"users": [{"id": 1, "login": "alice@", "roles": ["admin"]}, {"id": 2, "login": "bob@"}],
	  "nodes": [{"id": 10, "name": "laptop", "user": 1, "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1"},
	            {"id": 11, "name": "router", "tags": ["tag:router"], "ipv4": "100.64.0.2",
	             "ipv6": "fd7a:115c:a1e0::2", "advertised_routes": ["10.0.0.0/16"]}],
	  "tailnet": {"name": "example.com"}}`
	policy := `{"tagOwners": {"tag:router": ["alice@"]},
	  "autoApprovers": {"routes": {"10.0.0.0/8": ["tag:router"]}},
	  "acls": [{"action": "accept", "src": ["alice@"], "dst": ["10.0.0.0/8:*"]}]}`
	engine, err := NewEngine(policy, state, EngineOptions{Approvals: "stored"})
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close(context.Background())
	ctx := context.Background()
	laptop, err := engine.Map(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(laptop), "10.0.0.0/16") {
		t.Fatalf("the auto-approved route is not in the laptop's peers: %s", laptop)
	}
	// The router goes offline: it is the route's only server, so no map changes.
	cs, err := engine.Apply(ctx, SetOnline{Node: 11, Online: false})
	if err != nil || !cs.Empty() {
		t.Fatalf("offline: %+v %v", cs, err)
	}
	// A second router for the route: the laptop's peers change.
	cs, err = engine.Apply(ctx, UpsertNode{NodeRecord{ID: 12, Name: "router-2", Tags: []string{"tag:router"},
		IPv4: "100.64.0.3", IPv6: "fd7a:115c:a1e0::3", AdvertisedRoutes: []string{"10.0.0.0/16"}}})
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := changed(cs)["laptop"]; !ok || !strings.Contains(strings.Join(c.Parts, ","), "peers") {
		t.Fatalf("second router: %+v", cs)
	}
	raw, err := engine.Query(ctx, "auto_approved", map[string]any{"node": 12})
	if err != nil || string(raw) != `["10.0.0.0/16"]` {
		t.Fatalf("auto_approved: %s %v", raw, err)
	}
}

// A state marshaled from the package's own records: a Service without hosts has a nil
// Hosts, which encoding/json writes as null (the engine refused it: "invalid type: null,
// expected a sequence").
func TestEngineStateFromRecords(t *testing.T) {
	state, err := json.Marshal(map[string]any{
		"users":    []UserRecord{{ID: 1, Login: "alice@"}},
		"nodes":    []NodeRecord{{ID: 10, Name: "laptop", User: ptr(uint64(1)), IPv4: "100.64.0.1"}},
		"services": []ServiceRecord{{Name: "svc:a", IPv4: "100.100.200.1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	engine, err := NewEngine(`{"grants": [{"src": ["*"], "dst": ["svc:a"], "ip": ["*"]}]}`, string(state), EngineOptions{})
	if err != nil {
		t.Fatalf("%s: %v", state, err)
	}
	engine.Close(context.Background())
}

func ptr[T any](v T) *T { return &v }

// Nodes of one address family through the typed records: the other family is left out of
// the event, not sent empty (which the engine refused as an invalid address).
func TestEngineSingleFamilyNodes(t *testing.T) {
	ctx := context.Background()
	state := `{"users": [{"id": 1, "login": "alice@example.com"}],
	  "nodes": [{"id": 1, "name": "dual", "user": 1, "ipv4": "100.64.0.1", "ipv6": "fd7a:115c:a1e0::1"}]}`
	policy := `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}`
	engine, err := NewEngine(policy, state, EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close(ctx)
	alice := uint64(1)
	for _, node := range []NodeRecord{
		{ID: 2, Name: "v6only", User: &alice, IPv6: "fd7a:115c:a1e0::2"},
		{ID: 3, Name: "v4only", User: &alice, IPv4: "100.64.0.3"},
	} {
		cs, err := engine.Apply(ctx, UpsertNode{node})
		if err != nil {
			t.Fatalf("%s: %v", node.Name, err)
		}
		if c, ok := changed(cs)[node.Name]; !ok || !c.Added {
			t.Fatalf("%s: %+v", node.Name, cs)
		}
	}
}

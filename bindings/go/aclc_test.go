package aclc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The repository's example policy and inventory, and the corpus fixture bindings/build.sh
// writes (what the native aclc prints for every conformance case).
var (
	repoRoot      = filepath.Join("..", "..")
	examplePolicy = filepath.Join(repoRoot, "testdata", "examples", "policy.hujson")
	exampleBroken = filepath.Join(repoRoot, "testdata", "examples", "invalid.hujson")
	exampleInv    = filepath.Join(repoRoot, "testdata", "examples", "inventory.json")
)

func corpusFixture() string {
	if p := os.Getenv("ACLC_CORPUS_FIXTURE"); p != "" {
		return p
	}
	return filepath.Join(repoRoot, "target", "bindings", "corpus.jsonl")
}

func read(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestInfo(t *testing.T) {
	rt, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	info, err := rt.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Aclc == "" || !contains(info.Ops, "node_map") {
		t.Fatalf("info: %+v", info)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestCheck(t *testing.T) {
	diags, err := Check(read(t, examplePolicy))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diags {
		if d.IsError() {
			t.Errorf("the example policy has an error: %+v", d)
		}
	}
	diags, err = Check(read(t, exampleBroken))
	if err != nil {
		t.Fatal(err)
	}
	errorsFound := 0
	for _, d := range diags {
		if d.IsError() {
			errorsFound++
			if d.File != "policy.hujson" || d.Line == 0 || d.Code == "" {
				t.Errorf("diagnostic not located: %+v", d)
			}
		}
	}
	if errorsFound < 3 {
		t.Fatalf("want the broken example's errors, got %+v", diags)
	}
	rt, _ := Default()
	res, err := rt.Check(context.Background(), read(t, exampleBroken), CheckOptions{Name: "broken.hujson", Inventory: read(t, exampleInv)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Valid || len(res.Diagnostics) == 0 || res.Diagnostics[0].File != "broken.hujson" {
		t.Fatalf("check with inventory: %+v", res)
	}
}

func TestFormat(t *testing.T) {
	out, err := Format("{\"acls\":[{\"action\":\"accept\",\n\"src\":[\"*\"],\"dst\":[\"*:*\"]}]}")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "\n") || strings.Contains(out, "\"acls\":[") {
		t.Fatalf("not laid out: %q", out)
	}
	again, err := Format(out)
	if err != nil || again != out {
		t.Fatalf("format is not idempotent: %q, %v", again, err)
	}
	_, err = Format("{\"acls\": [")
	var aerr *Error
	if !errors.As(err, &aerr) || aerr.Kind != "invalid" || len(aerr.Diagnostics) == 0 {
		t.Fatalf("want an invalid error with diagnostics, got %v", err)
	}
}

func TestCompileLoadNodeMapExplain(t *testing.T) {
	ctx := context.Background()
	policy, inventory := read(t, examplePolicy), read(t, exampleInv)
	nodes, err := Compile(policy, inventory)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 7 {
		t.Fatalf("want 7 nodes, got %d", len(nodes))
	}
	p, err := Load(policy, inventory)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Nodes) != 7 {
		t.Fatalf("load: %+v", p)
	}
	for _, name := range p.Nodes {
		m, err := p.NodeMap(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if !jsonEqual(m, nodes[name]) {
			t.Errorf("node map of %s differs from compile's", name)
		}
	}
	one, err := NodeMap(policy, inventory, "web-1")
	if err != nil || !jsonEqual(one, nodes["web-1"]) {
		t.Fatalf("NodeMap(web-1): %v", err)
	}
	some, err := p.Compile(ctx, "db-1")
	if err != nil || len(some) != 1 {
		t.Fatalf("Policy.Compile(db-1): %v %v", some, err)
	}
	_, err = p.NodeMap(ctx, "nope")
	var aerr *Error
	if !errors.As(err, &aerr) || aerr.Kind != "unknown_node" {
		t.Fatalf("want unknown_node, got %v", err)
	}
	e, err := p.Explain(ctx, Query{Src: "bob@example.com", Dst: "web-1:443"})
	if err != nil || !e.Allowed || len(e.Rules) != 1 || e.Rules[0].Line != 27 {
		t.Fatalf("explain allowed: %+v %v", e, err)
	}
	// The other rules that let a flow through as well are named.
	e, err = p.Explain(ctx, Query{Src: "carol-desktop", Dst: "carol-desktop:22"})
	if err != nil || len(e.Rules) != 1 || e.Rules[0].Line != 29 || len(e.Also) != 1 || e.Also[0].Line != 31 {
		t.Fatalf("explain also: %+v %v", e, err)
	}
	e, err = Explain(policy, inventory, Query{Src: "bob@example.com", Dst: "db-1:5432"})
	if err != nil || e.Allowed || e.Reason == "" {
		t.Fatalf("explain denied: %+v %v", e, err)
	}
	e, err = p.Explain(ctx, Query{Src: "carol@example.com", Dst: "web-1", User: "root"})
	if err != nil || e.Reason == "" {
		t.Fatalf("explain ssh: %+v %v", e, err)
	}
	_, err = p.Explain(ctx, Query{Src: "nobody-at-all", Dst: "web-1:443"})
	if !errors.As(err, &aerr) || aerr.Kind != "query" {
		t.Fatalf("want a query error, got %v", err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatalf("closing a policy twice: %v", err)
	}
	_, err = p.NodeMap(ctx, "web-1")
	if !errors.As(err, &aerr) || aerr.Kind != "unknown_handle" {
		t.Fatalf("want unknown_handle after Close, got %v", err)
	}
	rt, _ := Default()
	custom, err := rt.Compile(ctx, policy, inventory, LoadOptions{Name: "p.hujson", ControlURL: "https://control.example"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(custom["alice-laptop"])+string(custom["web-1"])+string(custom["db-1"]), "https://control.example") {
		t.Errorf("the control URL is not in the SSH check-mode links")
	}
	// The example's exit node receives every rule's destinations by default, only the
	// internet's with ExitNodeFilters "internet".
	all, err := rt.Compile(ctx, policy, inventory, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	internet, err := rt.Compile(ctx, policy, inventory, LoadOptions{ExitNodeFilters: "internet"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(all["exit-1"]), `"100.64.1.2"`) || strings.Contains(string(internet["exit-1"]), `"100.64.1.2"`) {
		t.Errorf("exit-1: all %s, internet %s", all["exit-1"], internet["exit-1"])
	}
	loaded, err := rt.Load(ctx, policy, inventory, LoadOptions{ControlURL: "https://control.example"})
	if err != nil {
		t.Fatal(err)
	}
	defer loaded.Close(ctx)
	report, err := Test(policy, inventory)
	if err != nil || report.Total == 0 || !report.Passed || report.Results[0].Line == 0 {
		t.Fatalf("Test: %+v %v", report, err)
	}
	_, err = Test(read(t, exampleBroken), inventory)
	if !errors.As(err, &aerr) || aerr.Kind != "refused" {
		t.Fatalf("Test of a broken policy: want refused, got %v", err)
	}
	_, err = Compile(read(t, exampleBroken), inventory)
	if !errors.As(err, &aerr) || aerr.Kind != "refused" || len(aerr.Diagnostics) == 0 {
		t.Fatalf("want a refusal, got %v", err)
	}
}

func TestRawRequests(t *testing.T) {
	rt, err := New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(context.Background())
	for req, kind := range map[string]string{
		`not json`:                                                    "bad_request",
		`{"op":"info"}`:                                               "bad_request",
		`{"version":2,"op":"info"}`:                                   "unsupported_version",
		`{"version":1,"op":"nope"}`:                                   "unknown_op",
		`{"version":1,"op":"check"}`:                                  "bad_request",
		`{"version":1,"op":"free","handle":99}`:                       "unknown_handle",
		`{"version":1,"op":"check","policy":"{}","extra":1}`:          "bad_request",
		`{"version":1,"op":"compile","policy":"{}","inventory":"[]"}`: "invalid_inventory",
	} {
		raw, err := rt.Call(context.Background(), []byte(req))
		if err != nil {
			t.Fatal(err)
		}
		err = decode(raw, nil)
		var aerr *Error
		if !errors.As(err, &aerr) || aerr.Kind != kind {
			t.Errorf("%s: want %s, got %s", req, kind, raw)
		}
	}
	if _, err := rt.Call(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// normalise keeps what the API and the command line both say: without "version", and of a
// failure only the error's message and diagnostics (the command line adds its verdict,
// `"valid": false` or `"passed": false`, and the API the error's "kind").
func normalise(raw []byte) any {
	var doc map[string]any
	if json.Unmarshal(raw, &doc) != nil {
		return nil
	}
	delete(doc, "version")
	if e, ok := doc["error"].(map[string]any); ok {
		delete(e, "kind")
		return map[string]any{"error": e}
	}
	return doc
}

type fixtureCase struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Policy    string          `json:"policy"`
	Inventory json.RawMessage `json:"inventory"`
	Check     json.RawMessage `json:"check"`
	Compile   json.RawMessage `json:"compile"`
	Test      json.RawMessage `json:"test"`
}

func readFixture(t *testing.T) []fixtureCase {
	f, err := os.Open(corpusFixture())
	if err != nil {
		t.Fatalf("no corpus fixture (run bindings/build.sh first): %v", err)
	}
	defer f.Close()
	var cases []fixtureCase
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	for sc.Scan() {
		var c fixtureCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 600 {
		t.Fatalf("only %d cases in the fixture", len(cases))
	}
	return cases
}

// TestCorpus: on every conformance case, check, compile and test through WebAssembly give
// what the native `aclc check`, `aclc compile` and `aclc test` print (verdicts, diagnostics,
// node maps, assertions).
func TestCorpus(t *testing.T) {
	cases := readFixture(t)
	rt, err := New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(context.Background())
	ctx := context.Background()
	failed := 0
	for _, c := range cases {
		for _, mode := range []struct {
			op   string
			want json.RawMessage
		}{{"check", c.Check}, {"compile", c.Compile}, {"test", c.Test}} {
			req, _ := json.Marshal(map[string]any{"version": 1, "op": mode.op, "policy": c.Policy, "name": c.Name, "inventory": c.Inventory})
			raw, err := rt.Call(ctx, req)
			if err != nil {
				t.Fatalf("%s %s: %v", c.ID, mode.op, err)
			}
			if got, want := normalise(raw), normalise(mode.want); !reflect.DeepEqual(got, want) {
				failed++
				if failed <= 5 {
					t.Errorf("%s: %s differs from aclc's\n got: %.400s\nwant: %.400s", c.ID, mode.op, raw, mode.want)
				}
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d calls differ from the native aclc", failed, 3*len(cases))
	}
	t.Logf("%d cases: check, compile and test identical to the native aclc", len(cases))
}

// TestTrapDropsTheInstance: a panic in aclc traps in WebAssembly; the allocation below panics
// (capacity overflow) and so traps. The instance is then replaced on the next call, and the
// policies loaded in it answer unknown_handle.
func TestTrapDropsTheInstance(t *testing.T) {
	ctx := context.Background()
	rt, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	p, err := rt.Load(ctx, read(t, examplePolicy), read(t, exampleInv), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rt.mu.Lock()
	_, trapped := rt.alloc.Call(ctx, 0xfffffff0)
	if trapped != nil {
		rt.drop(ctx) // as callLocked does when a call fails
	}
	rt.mu.Unlock()
	if trapped == nil {
		t.Fatal("allocating 4 GiB did not trap")
	}
	if _, err := rt.Info(ctx); err != nil {
		t.Fatalf("the runtime did not restart: %v", err)
	}
	var aerr *Error
	if _, err := p.NodeMap(ctx, "web-1"); !errors.As(err, &aerr) || aerr.Kind != "unknown_handle" {
		t.Fatalf("want unknown_handle from the lost instance, got %v", err)
	}
	q, err := rt.Load(ctx, read(t, examplePolicy), read(t, exampleInv), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.NodeMap(ctx, "web-1"); err != nil {
		t.Fatal(err)
	}
}

// allowAllTailnet is an inventory of n nodes of one user.
func allowAllTailnet(n int) string {
	var inv strings.Builder
	inv.WriteString(`{"users":[{"id":1,"name":"a","email":"a@example.com","roles":[]}],"nodes":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			inv.WriteString(",")
		}
		fmt.Fprintf(&inv, `{"name":"n%d","user":"a@example.com","tags":[],"ipv4":"100.64.%d.%d","ipv6":"fd7a:115c:a1e0::%x","routable_ips":[],"approved_routes":[]}`,
			i, i/200, i%200+1, i+1)
	}
	inv.WriteString(`]}`)
	return inv.String()
}

// TestContextBoundsACall: a call whose context is done stops (the error wraps the context's),
// its instance is dropped with the policies loaded in it, and the next call starts a fresh one.
func TestContextBoundsACall(t *testing.T) {
	ctx := context.Background()
	rt, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	// Already cancelled: the call does not run.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := rt.Info(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	// A deadline inside a slow compile (an allow-all policy on 1,500 nodes: every node a
	// peer of every other) stops it there.
	allowAll := `{"acls":[{"action":"accept","src":["*"],"dst":["*:*"]}]}`
	// The same tailnet, small, compiles: the deadline below stops a valid compile.
	if nodes, err := rt.Compile(ctx, allowAll, allowAllTailnet(20), LoadOptions{}); err != nil || len(nodes) != 20 {
		t.Fatalf("the small tailnet: %d nodes, %v", len(nodes), err)
	}
	p, err := rt.Load(ctx, read(t, examplePolicy), read(t, exampleInv), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	short, stop := context.WithTimeout(ctx, 20*time.Millisecond)
	defer stop()
	start := time.Now()
	_, err = rt.Compile(short, allowAll, allowAllTailnet(1500), LoadOptions{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want context.DeadlineExceeded, got %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the stopped call took %v", took)
	}
	var aerr *Error
	if _, err := p.NodeMap(ctx, "web-1"); !errors.As(err, &aerr) || aerr.Kind != "unknown_handle" {
		t.Fatalf("want unknown_handle from the stopped instance, got %v", err)
	}
	if _, err := rt.Info(ctx); err != nil {
		t.Fatalf("the runtime did not restart: %v", err)
	}
}

// TestCloseAfterTheRuntime: a policy or engine closed after its Runtime is a no-op (its
// handle went with the runtime), while other calls on the closed runtime still fail.
func TestCloseAfterTheRuntime(t *testing.T) {
	ctx := context.Background()
	rt, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p, err := rt.Load(ctx, read(t, examplePolicy), read(t, exampleInv), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatalf("closing a policy after its runtime: %v", err)
	}
	if _, err := p.NodeMap(ctx, "web-1"); err == nil {
		t.Fatal("a call on a closed runtime succeeded")
	}
}

// TestConcurrentUse: one Runtime shared by goroutines (calls are serialised).
func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	policy, inventory := read(t, examplePolicy), read(t, exampleInv)
	rt, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	p, err := rt.Load(ctx, policy, inventory, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := p.NodeMap(ctx, "db-1")
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() {
			for j := 0; j < 10; j++ {
				got, err := p.NodeMap(ctx, "db-1")
				if err == nil && !jsonEqual(got, want) {
					err = errors.New("a different map")
				}
				if err == nil {
					_, err = rt.Check(ctx, policy, CheckOptions{})
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestDiff(t *testing.T) {
	policy, inventory := read(t, examplePolicy), read(t, exampleInv)
	widened := strings.Replace(policy, `"ip": ["tcp:5432"]`, `"ip": ["tcp:5432-5433"]`, 1)
	if widened == policy {
		t.Fatal("the example changed: no tcp:5432 grant")
	}
	d, err := Diff(policy, widened, inventory)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Changed || d.Network == nil || len(d.Network.Gained) != 1 || len(d.Network.Lost) != 0 {
		t.Fatalf("diff: %+v", d)
	}
	var gain struct {
		Ports string `json:"ports"`
	}
	if err := json.Unmarshal(d.Network.Gained[0], &gain); err != nil || gain.Ports != "5433" {
		t.Fatalf("gain: %s (%v)", d.Network.Gained[0], err)
	}
	same, err := Diff(policy, policy, "")
	if err != nil || same.Changed || same.Network != nil {
		t.Fatalf("same: %+v %v", same, err)
	}
	if _, err := Diff(policy, "{\"acls\": [", ""); err == nil {
		t.Fatal("an invalid policy diffed")
	}
}

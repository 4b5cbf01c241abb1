package aclc

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
)

// Info is what the embedded build is: its version and the operations it knows.
type Info struct {
	Aclc string   `json:"aclc"`
	Ops  []string `json:"ops"`
}

// CheckResult is what `aclc check --format json` prints for one policy.
type CheckResult struct {
	Valid       bool         `json:"valid"`
	Diagnostics []Diagnostic `json:"diagnostics"`
}

// CheckOptions are check's optional inputs.
type CheckOptions struct {
	// Name is the file name diagnostics carry (default "policy.hujson").
	Name string
	// Inventory (JSON text) to check the policy against; with it the policy's tests run.
	Inventory string
}

// LoadOptions are the optional inputs of a compile.
type LoadOptions struct {
	// Name is the file name diagnostics carry (default "policy.hujson").
	Name string
	// ControlURL is the base of SSH check-mode links (default aclc's).
	ControlURL string
	// ExitNodeFilters is what an approved exit node's packet filter holds: "all" (default:
	// every rule's destinations, as Tailscale sends them) or "internet" (only the internet's).
	ExitNodeFilters string
}

// Query asks whether Src may reach Dst (host:port; a bare host for ICMP), or with User set,
// whether Src may SSH into Dst as User.
type Query struct {
	Src   string
	Dst   string
	Proto string
	User  string
}

// Rule is a policy rule, where it is and its text on one line.
type Rule struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
	Text   string `json:"text"`
}

// Miss is a rule that nearly matched, and why it did not.
type Miss struct {
	Rule
	Why string `json:"why"`
}

// Explanation is the verdict on one flow or login, by which rules, and on a denial the
// nearest misses (what `aclc explain --format json` prints).
type Explanation struct {
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason"`
	Rules   []Rule `json:"rules"`
	Misses  []Miss `json:"misses"`
	// Also lists, for an allowed flow, the other rules that let some of it through as
	// well: removing only Rules would not deny it (empty for SSH logins).
	Also []Rule `json:"also"`
	// Notes say what the verdict cannot show: a closed TCP port 22 under an allowed SSH
	// login, an endpoint that is an IPv4 address `disable-ipv4` takes away.
	Notes []string `json:"notes"`
}

// Place is a place in the policy.
type Place struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
}

// TestResult is one assertion of the policy's tests or sshTests.
type TestResult struct {
	Kind      string  `json:"kind"` // "network" or "ssh"
	Test      int     `json:"test"` // index in tests / sshTests
	Passed    bool    `json:"passed"`
	Subject   string  `json:"subject"`
	Expected  *string `json:"expected"` // "allowed", "allowed_by_check", "denied"
	Got       *string `json:"got"`      // "denied", "allowed", "allowed_by_accept", "allowed_by_check"
	Error     *string `json:"error"`
	AllowedBy []Place `json:"allowed_by"`
	Message   string  `json:"message"`
	Warning   string  `json:"warning,omitempty"`
	Place
}

// TestReport is what `aclc test --format json` prints: every assertion.
type TestReport struct {
	Passed   bool         `json:"passed"`
	Total    int          `json:"total"`
	Failed   int          `json:"failed"`
	Warnings int          `json:"warnings"`
	Results  []TestResult `json:"results"`
}

// Policy is a policy compiled against an inventory, held in its Runtime until Close.
type Policy struct {
	rt         *Runtime
	handle     uint64
	generation uint64
	closed     atomic.Bool
	// Nodes lists the inventory's nodes, in the order Compile reports them.
	Nodes []string
	// Warnings are the policy's warnings (the policy was accepted).
	Warnings []Diagnostic
}

func setName(req map[string]any, name string) {
	if name != "" {
		req["name"] = name
	}
}

// Info describes the embedded build.
func (r *Runtime) Info(ctx context.Context) (*Info, error) {
	var out Info
	if err := r.do(ctx, map[string]any{"op": "info"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Check validates a policy as `aclc check` does.
func (r *Runtime) Check(ctx context.Context, policy string, opts CheckOptions) (*CheckResult, error) {
	req := map[string]any{"op": "check", "policy": policy}
	setName(req, opts.Name)
	if opts.Inventory != "" {
		req["inventory"] = opts.Inventory
	}
	var out CheckResult
	if err := r.do(ctx, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Format lays a policy out as `aclc fmt` (and Tailscale's hujsonfmt) does.
func (r *Runtime) Format(ctx context.Context, policy string) (string, error) {
	var out struct {
		Formatted string `json:"formatted"`
	}
	if err := r.do(ctx, map[string]any{"op": "fmt", "policy": policy}, &out); err != nil {
		return "", err
	}
	return out.Formatted, nil
}

// Compile compiles a policy against an inventory (JSON text) and returns each node's map
// (packet filter, SSH rules, peers), as `aclc compile` prints them. A policy Tailscale would
// refuse is an *Error of kind "refused".
func (r *Runtime) Compile(ctx context.Context, policy, inventory string, opts LoadOptions) (map[string]json.RawMessage, error) {
	req := map[string]any{"op": "compile", "policy": policy, "inventory": inventory}
	setName(req, opts.Name)
	if opts.ControlURL != "" {
		req["control_url"] = opts.ControlURL
	}
	if opts.ExitNodeFilters != "" {
		req["exit_node_filters"] = opts.ExitNodeFilters
	}
	var out struct {
		Nodes map[string]json.RawMessage `json:"nodes"`
	}
	if err := r.do(ctx, req, &out); err != nil {
		return nil, err
	}
	return out.Nodes, nil
}

// Load compiles a policy against an inventory and keeps it, so that node maps and
// explanations need no recompile. Close the Policy to release it.
func (r *Runtime) Load(ctx context.Context, policy, inventory string, opts LoadOptions) (*Policy, error) {
	req := map[string]any{"op": "load", "policy": policy, "inventory": inventory, "version": APIVersion}
	setName(req, opts.Name)
	if opts.ControlURL != "" {
		req["control_url"] = opts.ControlURL
	}
	if opts.ExitNodeFilters != "" {
		req["exit_node_filters"] = opts.ExitNodeFilters
	}
	var out struct {
		Handle   uint64       `json:"handle"`
		Nodes    []string     `json:"nodes"`
		Warnings []Diagnostic `json:"warnings"`
	}
	gen, err := r.create(ctx, req, &out)
	if err != nil {
		return nil, err
	}
	return &Policy{rt: r, handle: out.Handle, generation: gen, Nodes: out.Nodes, Warnings: out.Warnings}, nil
}

// create sends a request that makes a handle (load, engine_new) and decodes its answer into
// out; it returns the generation of the instance that holds the handle.
func (r *Runtime) create(ctx context.Context, req map[string]any, out any) (uint64, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return 0, err
	}
	r.mu.Lock()
	raw, gen, err := r.callLocked(ctx, body, 0)
	r.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return gen, decode(raw, out)
}

// Test runs the policy's tests and sshTests against an inventory (JSON text) and reports
// every assertion, as `aclc test` does. A policy that cannot be compiled is an *Error.
func (r *Runtime) Test(ctx context.Context, policy, inventory string, opts LoadOptions) (*TestReport, error) {
	req := map[string]any{"op": "test", "policy": policy, "inventory": inventory}
	setName(req, opts.Name)
	var out TestReport
	if err := r.do(ctx, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Changes are the gains and losses of one kind in a Diff (each entry as `aclc diff --format
// json` prints it).
type Changes struct {
	Gained []json.RawMessage `json:"gained"`
	Lost   []json.RawMessage `json:"lost"`
}

// DiffResult is what `aclc diff --format json` prints: whether access (with an inventory) or
// the policy's meaning (without) changed, the semantic diff per section, and with an
// inventory the access gained and lost per kind.
type DiffResult struct {
	Changed      bool            `json:"changed"`
	Old          string          `json:"old"`
	New          string          `json:"new"`
	Policy       json.RawMessage `json:"policy"`
	Network      *Changes        `json:"network,omitempty"`
	SSH          *Changes        `json:"ssh,omitempty"`
	Peers        *Changes        `json:"peers,omitempty"`
	Capabilities *Changes        `json:"capabilities,omitempty"`
	// Apps: the application capabilities app grants give sources on destinations.
	Apps *Changes `json:"apps,omitempty"`
}

// Diff compares two policies; inventory (JSON text) may be empty for the semantic diff only.
func (r *Runtime) Diff(ctx context.Context, oldPolicy, newPolicy, inventory string) (*DiffResult, error) {
	req := map[string]any{"op": "diff", "old": oldPolicy, "new": newPolicy}
	if inventory != "" {
		req["inventory"] = inventory
	}
	var out DiffResult
	if err := r.do(ctx, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Explain answers "can Src reach Dst and why" for a policy and an inventory (JSON text).
func (r *Runtime) Explain(ctx context.Context, policy, inventory string, q Query) (*Explanation, error) {
	req := map[string]any{"op": "explain", "policy": policy, "inventory": inventory}
	return r.explain(ctx, 0, req, q)
}

func (r *Runtime) explain(ctx context.Context, want uint64, req map[string]any, q Query) (*Explanation, error) {
	req["src"], req["dst"] = q.Src, q.Dst
	if q.Proto != "" {
		req["proto"] = q.Proto
	}
	if q.User != "" {
		req["user"] = q.User
	}
	var out Explanation
	if err := r.doIn(ctx, want, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// NodeMap is one node's map (as in Compile), without recompiling.
func (p *Policy) NodeMap(ctx context.Context, node string) (json.RawMessage, error) {
	var out struct {
		Map json.RawMessage `json:"map"`
	}
	if err := p.rt.doIn(ctx, p.generation, map[string]any{"op": "node_map", "handle": p.handle, "node": node}, &out); err != nil {
		return nil, err
	}
	return out.Map, nil
}

// Compile returns the maps of the given nodes (every node when none is given).
func (p *Policy) Compile(ctx context.Context, nodes ...string) (map[string]json.RawMessage, error) {
	req := map[string]any{"op": "compile", "handle": p.handle}
	if len(nodes) > 0 {
		req["nodes"] = nodes
	}
	var out struct {
		Nodes map[string]json.RawMessage `json:"nodes"`
	}
	if err := p.rt.doIn(ctx, p.generation, req, &out); err != nil {
		return nil, err
	}
	return out.Nodes, nil
}

// Explain answers a query on the loaded policy.
func (p *Policy) Explain(ctx context.Context, q Query) (*Explanation, error) {
	return p.rt.explain(ctx, p.generation, map[string]any{"op": "explain", "handle": p.handle}, q)
}

// Close releases the policy. Closing it again, or after its Runtime, does nothing and
// returns nil.
func (p *Policy) Close(ctx context.Context) error {
	if p.closed.Swap(true) {
		return nil
	}
	err := p.rt.doIn(ctx, p.generation, map[string]any{"op": "free", "handle": p.handle}, nil)
	if errors.Is(err, errLost) || errors.Is(err, errClosed) {
		return nil // already gone with its instance, or with its closed runtime
	}
	return err
}

var (
	defaultOnce sync.Once
	defaultRT   *Runtime
	defaultErr  error
)

// Default is the Runtime the package-level functions use, started on first use.
func Default() (*Runtime, error) {
	defaultOnce.Do(func() { defaultRT, defaultErr = New(context.Background()) })
	return defaultRT, defaultErr
}

// Check validates a policy and returns every diagnostic (errors and warnings); the policy
// is valid when none is an error. err is only for a failure of the runtime.
func Check(policy string) ([]Diagnostic, error) {
	rt, err := Default()
	if err != nil {
		return nil, err
	}
	res, err := rt.Check(context.Background(), policy, CheckOptions{})
	if err != nil {
		return nil, err
	}
	return res.Diagnostics, nil
}

// Format lays a policy out as `aclc fmt` does.
func Format(policy string) (string, error) {
	rt, err := Default()
	if err != nil {
		return "", err
	}
	return rt.Format(context.Background(), policy)
}

// Compile compiles a policy against an inventory (JSON text): each node's map.
func Compile(policy, inventory string) (map[string]json.RawMessage, error) {
	rt, err := Default()
	if err != nil {
		return nil, err
	}
	return rt.Compile(context.Background(), policy, inventory, LoadOptions{})
}

// Load compiles and keeps a policy (see Runtime.Load).
func Load(policy, inventory string) (*Policy, error) {
	rt, err := Default()
	if err != nil {
		return nil, err
	}
	return rt.Load(context.Background(), policy, inventory, LoadOptions{})
}

// NodeMap compiles a policy and returns one node's map. To ask for several nodes, Load the
// policy once and use Policy.NodeMap.
func NodeMap(policy, inventory, node string) (json.RawMessage, error) {
	p, err := Load(policy, inventory)
	if err != nil {
		return nil, err
	}
	defer p.Close(context.Background())
	return p.NodeMap(context.Background(), node)
}

// Explain answers "can Src reach Dst and why".
func Explain(policy, inventory string, q Query) (*Explanation, error) {
	rt, err := Default()
	if err != nil {
		return nil, err
	}
	return rt.Explain(context.Background(), policy, inventory, q)
}

// Diff compares two policies (see Runtime.Diff).
func Diff(oldPolicy, newPolicy, inventory string) (*DiffResult, error) {
	rt, err := Default()
	if err != nil {
		return nil, err
	}
	return rt.Diff(context.Background(), oldPolicy, newPolicy, inventory)
}

// Test runs the policy's tests and sshTests (see Runtime.Test).
func Test(policy, inventory string) (*TestReport, error) {
	rt, err := Default()
	if err != nil {
		return nil, err
	}
	return rt.Test(context.Background(), policy, inventory, LoadOptions{})
}

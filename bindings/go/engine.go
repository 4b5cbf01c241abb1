package aclc

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
)

// The control-server engine (docs/embedding.md, "The engine"): the policy and the tailnet,
// users and nodes by the stable ids of the server's database; events in, change sets out.

// UserRecord is a user of the tailnet, by stable id.
type UserRecord struct {
	ID uint64 `json:"id"`
	// Login is what policies name the user by: an e-mail address, or a bare login with a
	// trailing "@" ("carol@").
	Login  string   `json:"login"`
	Name   string   `json:"name,omitempty"`
	Roles  []string `json:"roles,omitempty"`
	Groups []string `json:"groups,omitempty"`
}

// NodeRecord is a node (device), by stable id. Ids are also the registration order: the
// lowest id among a route's online servers is its primary.
type NodeRecord struct {
	ID       uint64 `json:"id"`
	Name     string `json:"name"`
	Hostname string `json:"hostname,omitempty"`
	// User is the owner's id; nil for a tagged node.
	User *uint64  `json:"user,omitempty"`
	Tags []string `json:"tags,omitempty"`
	// IPv4 and IPv6 are the node's addresses; a node of one family leaves the other empty.
	IPv4             string         `json:"ipv4,omitempty"`
	IPv6             string         `json:"ipv6,omitempty"`
	AdvertisedRoutes []string       `json:"advertised_routes,omitempty"`
	ApprovedRoutes   []string       `json:"approved_routes,omitempty"`
	Posture          map[string]any `json:"posture,omitempty"`
	// Online is whether the node is connected; nil means online.
	Online *bool `json:"online,omitempty"`
}

// ServiceRecord is a Tailscale Service ("svc:name"): its virtual addresses and the nodes, by
// id, that host it (a host id naming no node is left out).
type ServiceRecord struct {
	Name          string   `json:"name"`
	IPv4          string   `json:"ipv4,omitempty"`
	IPv6          string   `json:"ipv6,omitempty"`
	Hosts         []uint64 `json:"hosts"`
	ApprovedHosts []uint64 `json:"approved_hosts,omitempty"`
	Tags          []string `json:"tags,omitempty"`
}

// Event is something that happened to the tailnet or its policy: UpsertNode, RemoveNode,
// UpsertUser, RemoveUser, AdvertiseRoutes, ApproveRoutes, SetOnline, ReplacePolicy,
// UpsertService or RemoveService.
type Event interface {
	event() map[string]any
}

// UpsertNode: a node joined, or changed (renamed, retagged, re-addressed ...).
type UpsertNode struct{ Node NodeRecord }

// RemoveNode: a node left.
type RemoveNode struct{ Node uint64 }

// UpsertUser: a user was added or changed.
type UpsertUser struct{ User UserRecord }

// RemoveUser: a user was deleted, with the nodes they own.
type RemoveUser struct{ User uint64 }

// AdvertiseRoutes: every route node Node advertises now.
type AdvertiseRoutes struct {
	Node   uint64
	Routes []string
}

// ApproveRoutes: every route approved for node Node now.
type ApproveRoutes struct {
	Node   uint64
	Routes []string
}

// SetOnline: node Node connected or disconnected.
type SetOnline struct {
	Node   uint64
	Online bool
}

// ReplacePolicy: a new policy (Name, the file name its diagnostics carry, defaults to the
// current policy's). A policy Tailscale would refuse is an *Error of kind "refused" and
// changes nothing.
type ReplacePolicy struct {
	Policy string
	Name   string
}

// UpsertService: a Tailscale Service was added or changed (addresses, hosts, approvals, tags).
type UpsertService struct{ Service ServiceRecord }

// RemoveService: a Tailscale Service was deleted (by name).
type RemoveService struct{ Service string }

func routes(r []string) []string {
	if r == nil {
		return []string{}
	}
	return r
}

func (e UpsertNode) event() map[string]any {
	return map[string]any{"type": "upsert_node", "node": e.Node}
}
func (e RemoveNode) event() map[string]any {
	return map[string]any{"type": "remove_node", "node": e.Node}
}
func (e UpsertUser) event() map[string]any {
	return map[string]any{"type": "upsert_user", "user": e.User}
}
func (e RemoveUser) event() map[string]any {
	return map[string]any{"type": "remove_user", "user": e.User}
}
func (e AdvertiseRoutes) event() map[string]any {
	return map[string]any{"type": "advertise_routes", "node": e.Node, "routes": routes(e.Routes)}
}
func (e ApproveRoutes) event() map[string]any {
	return map[string]any{"type": "approve_routes", "node": e.Node, "routes": routes(e.Routes)}
}
func (e SetOnline) event() map[string]any {
	return map[string]any{"type": "set_online", "node": e.Node, "online": e.Online}
}
func (e UpsertService) event() map[string]any {
	svc := e.Service
	if svc.Hosts == nil {
		svc.Hosts = []uint64{}
	}
	return map[string]any{"type": "upsert_service", "service": svc}
}
func (e RemoveService) event() map[string]any {
	return map[string]any{"type": "remove_service", "service": e.Service}
}
func (e ReplacePolicy) event() map[string]any {
	m := map[string]any{"type": "replace_policy", "policy": e.Policy}
	setName(m, e.Name)
	return m
}

// EngineNode is a node's id and name.
type EngineNode struct {
	ID   uint64 `json:"id"`
	Name string `json:"name"`
}

// NodeChange is one node whose map an event changed, and which parts: "packet_filter",
// "ssh_rules", "peers", "cap_map", "own" (every part for a node that joined).
type NodeChange struct {
	ID    uint64   `json:"id"`
	Name  string   `json:"name"`
	Added bool     `json:"added"`
	Parts []string `json:"parts"`
}

// ChangeSet is what an event changed: push a new map (Engine.Map) to each node of Changed,
// drop the nodes of Removed.
type ChangeSet struct {
	// Snapshot counts the events that changed the state.
	Snapshot uint64       `json:"snapshot"`
	Changed  []NodeChange `json:"changed"`
	Removed  []EngineNode `json:"removed"`
	// Warnings are a replaced policy's warnings.
	Warnings []Diagnostic `json:"warnings,omitempty"`
}

// Empty reports whether no node needs a new map.
func (c *ChangeSet) Empty() bool { return len(c.Changed) == 0 && len(c.Removed) == 0 }

// EngineOptions are the optional inputs of an engine.
type EngineOptions struct {
	// Name is the file name diagnostics carry (default "policy.hujson").
	Name string
	// ControlURL is the base of SSH check-mode links (default aclc's).
	ControlURL string
	// ExitNodeFilters is what an approved exit node's packet filter holds: "all" (default:
	// every rule's destinations, as Tailscale sends them) or "internet" (only the internet's,
	// for tailnets where that would be most of the policy on each exit node).
	ExitNodeFilters string
	// Approvals is "derived" (default: autoApprovers recomputed on every compile) or "stored"
	// (auto-approvals written into the records, never taken back, as Tailscale does).
	Approvals string
	// Inventory: the tailnet is given in the corpus inventory format (nodes numbered 1, 2, ...
	// in registration order) rather than the engine's state format.
	Inventory bool
}

// Engine is a control-server engine held in its Runtime until Close.
type Engine struct {
	rt         *Runtime
	handle     uint64
	generation uint64
	closed     atomic.Bool
	// Nodes are the tailnet's nodes at the start, by ascending id.
	Nodes []EngineNode
	// Warnings are the policy's warnings (the policy was accepted).
	Warnings []Diagnostic
}

// NewEngine starts an engine for a policy and a tailnet: tailnet is JSON text in the engine's
// state format ({"users": [...], "nodes": [...], "tailnet": {...}}), or with opts.Inventory in
// the corpus inventory format. A policy Tailscale would refuse is an *Error of kind "refused".
func (r *Runtime) NewEngine(ctx context.Context, policy, tailnet string, opts EngineOptions) (*Engine, error) {
	req := map[string]any{"op": "engine_new", "policy": policy, "version": APIVersion}
	if opts.Inventory {
		req["inventory"] = tailnet
	} else {
		req["state"] = tailnet
	}
	setName(req, opts.Name)
	if opts.ControlURL != "" {
		req["control_url"] = opts.ControlURL
	}
	if opts.ExitNodeFilters != "" {
		req["exit_node_filters"] = opts.ExitNodeFilters
	}
	if opts.Approvals != "" {
		req["approvals"] = opts.Approvals
	}
	var out struct {
		Handle   uint64       `json:"handle"`
		Nodes    []EngineNode `json:"nodes"`
		Warnings []Diagnostic `json:"warnings"`
	}
	gen, err := r.create(ctx, req, &out)
	if err != nil {
		return nil, err
	}
	return &Engine{rt: r, handle: out.Handle, generation: gen, Nodes: out.Nodes, Warnings: out.Warnings}, nil
}

// NewEngine starts an engine in the Default runtime (see Runtime.NewEngine).
func NewEngine(policy, tailnet string, opts EngineOptions) (*Engine, error) {
	rt, err := Default()
	if err != nil {
		return nil, err
	}
	return rt.NewEngine(context.Background(), policy, tailnet, opts)
}

// Apply applies an event and returns which nodes' maps changed. A refused event is an *Error
// ("unknown_node", "unknown_user", "invalid_tailnet", "refused") and changes nothing.
func (e *Engine) Apply(ctx context.Context, ev Event) (*ChangeSet, error) {
	var out ChangeSet
	req := map[string]any{"op": "engine_apply", "handle": e.handle, "event": ev.event()}
	if err := e.rt.doIn(ctx, e.generation, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ApplyBatch applies evs in order as one change: one compile and one change set, the nodes
// whose map differs between before the first event and after the last. It is atomic: a refused
// event (the *Error's message starts "events[i]: ") or an invalid tailnet after the last one
// refuses the whole batch. A server applies the events that queued up while it was busy this
// way. ReplacePolicy is applied on its own (Apply), not in a batch.
func (e *Engine) ApplyBatch(ctx context.Context, evs []Event) (*ChangeSet, error) {
	events := make([]any, 0, len(evs))
	for _, ev := range evs {
		events = append(events, ev.event())
	}
	var out ChangeSet
	req := map[string]any{"op": "engine_apply", "handle": e.handle, "events": events}
	if err := e.rt.doIn(ctx, e.generation, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Map is node id's map (packet filter, SSH rules, peers ...; as in Compile) in the current
// snapshot.
func (e *Engine) Map(ctx context.Context, id uint64) (json.RawMessage, error) {
	return e.nodeMap(ctx, id)
}

// MapByName is the map of the node called name.
func (e *Engine) MapByName(ctx context.Context, name string) (json.RawMessage, error) {
	return e.nodeMap(ctx, name)
}

func (e *Engine) nodeMap(ctx context.Context, node any) (json.RawMessage, error) {
	var out struct {
		Map json.RawMessage `json:"map"`
	}
	req := map[string]any{"op": "engine_map", "handle": e.handle, "node": node}
	if err := e.rt.doIn(ctx, e.generation, req, &out); err != nil {
		return nil, err
	}
	return out.Map, nil
}

// Query asks the current snapshot a question ("may_apply_tag", "auto_approves",
// "auto_approved", "approvals_lost", "ssh_decision", "explain_flow", "peer_impact"; arguments
// in docs/embedding.md, nodes by id or name) and returns the answer's JSON.
func (e *Engine) Query(ctx context.Context, question string, args map[string]any) (json.RawMessage, error) {
	if args == nil {
		args = map[string]any{}
	}
	var out struct {
		Answer json.RawMessage `json:"answer"`
	}
	req := map[string]any{"op": "engine_query", "handle": e.handle, "question": question, "args": args}
	if err := e.rt.doIn(ctx, e.generation, req, &out); err != nil {
		return nil, err
	}
	return out.Answer, nil
}

// MayApplyTag reports whether user userID may apply tag.
func (e *Engine) MayApplyTag(ctx context.Context, userID uint64, tag string) (bool, error) {
	raw, err := e.Query(ctx, "may_apply_tag", map[string]any{"user": userID, "tag": tag})
	if err != nil {
		return false, err
	}
	var yes bool
	return yes, json.Unmarshal(raw, &yes)
}

// SSHDecision is the SSH rule a destination applies to a login.
type SSHDecision struct {
	// Action is "accept", "check" or "denied".
	Action string `json:"action"`
	// CheckPeriod is a check rule's period, as Go prints durations ("12h0m0s"), or "always".
	CheckPeriod string `json:"check_period,omitempty"`
	Rule        *struct {
		Index int `json:"index"`
		Rule
	} `json:"rule,omitempty"`
	LocalUser string `json:"local_user,omitempty"`
}

// SSHDecision is the SSH rule node dst applies when node src logs in as login.
func (e *Engine) SSHDecision(ctx context.Context, src, dst uint64, login string) (*SSHDecision, error) {
	raw, err := e.Query(ctx, "ssh_decision", map[string]any{"src": src, "dst": dst, "login": login})
	if err != nil {
		return nil, err
	}
	var out SSHDecision
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Close releases the engine. Closing it again, or after its Runtime, does nothing and
// returns nil.
func (e *Engine) Close(ctx context.Context) error {
	if e.closed.Swap(true) {
		return nil
	}
	err := e.rt.doIn(ctx, e.generation, map[string]any{"op": "free", "handle": e.handle}, nil)
	if errors.Is(err, errLost) || errors.Is(err, errClosed) {
		return nil // already gone with its instance, or with its closed runtime
	}
	return err
}

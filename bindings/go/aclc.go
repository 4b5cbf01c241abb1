// Package aclc checks, formats, compiles and explains Tailscale policy files in pure Go
// (CGO_ENABLED=0): it runs aclc's WebAssembly build (embedded with go:embed) on the wazero
// runtime. Every call is one JSON request to aclc's embedding API, documented in
// docs/embedding.md of the aclc repository.
//
// The package-level functions share one Runtime; New makes a separate one (one
// WebAssembly instance, its own loaded policies). A Runtime serialises its calls.
package aclc

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// APIVersion is the version of the embedding API's JSON this package speaks.
const APIVersion = 1

//go:embed aclc.wasm
var wasmModule []byte

// The module compiled once per process, shared by every Runtime.
var (
	compileOnce sync.Once
	engine      wazero.Runtime
	compiled    wazero.CompiledModule
	compileErr  error
)

func compiledModule(ctx context.Context) (wazero.Runtime, wazero.CompiledModule, error) {
	compileOnce.Do(func() {
		// A call's context bounds it: when the context is done the instance is stopped (and
		// dropped, as after a trap), so a server can put a deadline on a slow compile.
		config := wazero.NewRuntimeConfig().WithCloseOnContextDone(true)
		engine = wazero.NewRuntimeWithConfig(context.Background(), config)
		compiled, compileErr = engine.CompileModule(context.Background(), wasmModule)
	})
	return engine, compiled, compileErr
}

// Runtime is one instance of aclc: its memory and the policies loaded into it.
type Runtime struct {
	mu         sync.Mutex
	mod        api.Module
	alloc      api.Function
	free       api.Function
	call       api.Function
	generation uint64 // bumped when the instance is replaced; handles of older ones are dead
	closed     bool
}

// New starts a Runtime (an instance of the WebAssembly module).
func New(ctx context.Context) (*Runtime, error) {
	r := &Runtime{}
	if err := r.instantiate(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Runtime) instantiate(ctx context.Context) error {
	rt, cm, err := compiledModule(ctx)
	if err != nil {
		return fmt.Errorf("aclc: cannot compile the WebAssembly module: %w", err)
	}
	mod, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		return fmt.Errorf("aclc: cannot instantiate the WebAssembly module: %w", err)
	}
	r.mod = mod
	r.alloc = mod.ExportedFunction("aclc_alloc")
	r.free = mod.ExportedFunction("aclc_free")
	r.call = mod.ExportedFunction("aclc_call")
	r.generation++
	if r.alloc == nil || r.free == nil || r.call == nil {
		return errors.New("aclc: the WebAssembly module lacks aclc_alloc, aclc_free or aclc_call")
	}
	return nil
}

// Close releases the instance and everything loaded into it.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.mod == nil {
		return nil
	}
	err := r.mod.Close(ctx)
	r.mod = nil
	return err
}

// Call sends one raw request (a JSON object with "version" and "op") and returns the raw
// response. A response with an "error" member is returned as is, not as an error: err is
// only for failures of the runtime itself (a trap, which also drops every loaded policy).
func (r *Runtime) Call(ctx context.Context, request []byte) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out, _, err := r.callLocked(ctx, request, 0)
	return out, err
}

// errClosed is the answer of a Runtime after Close.
var errClosed = errors.New("aclc: the runtime is closed")

// errLost is the answer for a handle of an instance that was dropped.
var errLost = &Error{Kind: "unknown_handle", Message: "the policy was lost when its runtime restarted"}

// callLocked sends request with r.mu held, in the instance of generation want (0: any; a
// handle belongs to the instance that loaded it, and a new instance numbers its own from
// 1 again). It returns the generation that answered.
func (r *Runtime) callLocked(ctx context.Context, request []byte, want uint64) ([]byte, uint64, error) {
	if r.closed {
		return nil, 0, errClosed
	}
	if r.mod == nil {
		if want != 0 {
			return nil, 0, errLost
		}
		if err := r.instantiate(ctx); err != nil {
			return nil, 0, err
		}
	}
	gen := r.generation
	if want != 0 && want != gen {
		return nil, 0, errLost
	}
	out, err := r.roundTrip(ctx, request)
	if err != nil {
		// The instance is closed with its context, or unusable after a trap: dropped either way.
		r.drop(context.Background())
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, gen, fmt.Errorf("aclc: the call was stopped (loaded policies are lost): %w", ctxErr)
		}
		return nil, gen, fmt.Errorf("aclc: the WebAssembly call failed (loaded policies are lost): %w", err)
	}
	return out, gen, nil
}

// drop discards the instance after a trap (a panic in aclc, or memory exhausted), which
// leaves it unusable, and with it every handle; the next call starts a fresh one.
func (r *Runtime) drop(ctx context.Context) {
	_ = r.mod.Close(ctx)
	r.mod = nil
}

func (r *Runtime) roundTrip(ctx context.Context, request []byte) ([]byte, error) {
	n := uint64(len(request))
	var ptr uint64
	if n > 0 {
		res, err := r.alloc.Call(ctx, n)
		if err != nil {
			return nil, err
		}
		ptr = res[0]
		if !r.mod.Memory().Write(uint32(ptr), request) {
			return nil, errors.New("request buffer out of range")
		}
	}
	res, err := r.call.Call(ctx, ptr, n)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		if _, err := r.free.Call(ctx, ptr, n); err != nil {
			return nil, err
		}
	}
	outPtr, outLen := uint32(res[0]>>32), uint32(res[0])
	view, ok := r.mod.Memory().Read(outPtr, outLen)
	if !ok {
		return nil, errors.New("response buffer out of range")
	}
	out := make([]byte, len(view))
	copy(out, view)
	if _, err := r.free.Call(ctx, uint64(outPtr), uint64(outLen)); err != nil {
		return nil, err
	}
	return out, nil
}

// Error is a failed request: its kind ("refused" for a policy Tailscale would refuse,
// "invalid" for a policy fmt cannot read, "bad_request", "unknown_handle", "unknown_node",
// "invalid_inventory", "query", "too_large" (a WebAssembly response past 512 MiB), and for
// the engine "unknown_user", "invalid_tailnet"; see
// docs/embedding.md), message, and for a refused or
// invalid policy every diagnostic.
type Error struct {
	Kind        string       `json:"kind"`
	Message     string       `json:"message"`
	Diagnostics []Diagnostic `json:"diagnostics,omitempty"`
}

func (e *Error) Error() string { return "aclc: " + e.Kind + ": " + e.Message }

// Diagnostic is one problem found in a policy, located (lines and columns are 1-based,
// columns count characters, the end is just past the span).
type Diagnostic struct {
	Severity  string  `json:"severity"`
	Code      string  `json:"code"`
	Message   string  `json:"message"`
	Help      *string `json:"help"`
	File      string  `json:"file"`
	Line      int     `json:"line"`
	Column    int     `json:"column"`
	EndLine   int     `json:"end_line"`
	EndColumn int     `json:"end_column"`
}

// IsError reports whether the diagnostic is an error (not a warning).
func (d Diagnostic) IsError() bool { return d.Severity == "error" }

type envelope struct {
	Version int    `json:"version"`
	Error   *Error `json:"error"`
}

// do sends request (op and arguments) and decodes the response into out.
func (r *Runtime) do(ctx context.Context, request map[string]any, out any) error {
	return r.doIn(ctx, 0, request, out)
}

// doIn is do in the instance of generation want (0: any).
func (r *Runtime) doIn(ctx context.Context, want uint64, request map[string]any, out any) error {
	request["version"] = APIVersion
	body, err := json.Marshal(request)
	if err != nil {
		return fmt.Errorf("aclc: cannot encode the request: %w", err)
	}
	r.mu.Lock()
	raw, _, err := r.callLocked(ctx, body, want)
	r.mu.Unlock()
	if err != nil {
		return err
	}
	return decode(raw, out)
}

// A response starts with its version, and a failure has nothing but "error" after it
// (docs/embedding.md), so a success is decoded once, straight into out.
var (
	successPrefix = []byte(fmt.Sprintf(`{"version":%d,`, APIVersion))
	failurePrefix = []byte(fmt.Sprintf(`{"version":%d,"error":`, APIVersion))
)

func decode(raw []byte, out any) error {
	if !bytes.HasPrefix(raw, successPrefix) || bytes.HasPrefix(raw, failurePrefix) {
		var env envelope
		if err := json.Unmarshal(raw, &env); err != nil {
			return fmt.Errorf("aclc: cannot decode the response: %w", err)
		}
		if env.Version != APIVersion {
			return fmt.Errorf("aclc: response version %d, want %d", env.Version, APIVersion)
		}
		if env.Error != nil {
			return env.Error
		}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("aclc: cannot decode the response: %w", err)
	}
	return nil
}

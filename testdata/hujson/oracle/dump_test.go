package hujson

// Oracle for aclc: dumps every test vector of this package's own tests with what the
// real Parse / Standardize / encoding/json / Format give for it.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

type vec struct {
	File    string `json:"file"`
	Case    string `json:"case"`
	InHex   string `json:"in_hex"`
	InQ     string `json:"in_go"`
	// What the test file itself states (empty when it states nothing).
	TestWantErr    string `json:"test_want_err,omitempty"`
	TestWantStd    *string `json:"test_want_std,omitempty"`
	TestWantFormat *string `json:"test_want_format,omitempty"`
	TestWantParseOK *bool `json:"test_want_parse_ok,omitempty"`
	// What the real library does (module v0.0.0-20260727124030-b80ff77dac4f).
	ParseOK   bool    `json:"parse_ok"`
	ParseErr  string  `json:"parse_err,omitempty"`
	StdHex    string  `json:"std_hex,omitempty"`
	// Canonical decoded value of the standardized text via encoding/json Decoder
	// (UseNumber; objects as [key,value] pairs with duplicates kept), JSON-encoded.
	Canon     string `json:"canon,omitempty"`
	UnmarshalAnyErr string `json:"unmarshal_any_err,omitempty"`
	Format    *string `json:"format,omitempty"`
	FormatHex string  `json:"format_hex,omitempty"`
}

func canon(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			pairs := []any{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := canon(dec)
				if err != nil {
					return nil, err
				}
				pairs = append(pairs, []any{kt.(string), v})
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return map[string]any{"o": pairs}, nil
		case '[':
			elems := []any{}
			for dec.More() {
				v, err := canon(dec)
				if err != nil {
					return nil, err
				}
				elems = append(elems, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return map[string]any{"a": elems}, nil
		}
	case string:
		return map[string]any{"s": t}, nil
	case json.Number:
		return map[string]any{"n": string(t)}, nil
	case bool:
		return map[string]any{"b": t}, nil
	case nil:
		return nil, nil
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}

// canonText writes the decoded value as: null, true, false, n:LEXEME, s:HEX(UTF-8),
// [a,b], {HEX(key):value,...} (member order and duplicates kept).
func canonText(dec *json.Decoder, w *strings.Builder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		open, close := byte('['), byte(']')
		if t == '{' {
			open, close = '{', '}'
		}
		w.WriteByte(open)
		first := true
		for dec.More() {
			if !first {
				w.WriteByte(',')
			}
			first = false
			if t == '{' {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				w.WriteString(hex.EncodeToString([]byte(kt.(string))))
				w.WriteByte(':')
			}
			if err := canonText(dec, w); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return err
		}
		w.WriteByte(close)
	case string:
		w.WriteString("s:" + hex.EncodeToString([]byte(t)))
	case json.Number:
		w.WriteString("n:" + string(t))
	case bool:
		fmt.Fprint(w, t)
	case nil:
		w.WriteString("null")
	default:
		return fmt.Errorf("unexpected token %v", tok)
	}
	return nil
}

func run(file, name string, in []byte) vec {
	v := vec{File: file, Case: name, InHex: hex.EncodeToString(in), InQ: strconv.Quote(string(in))}
	_, err := Parse(append([]byte(nil), in...))
	if err != nil {
		v.ParseErr = err.Error()
		return v
	}
	v.ParseOK = true
	// Value.Clone drops an empty trailing-comma marker (copyBytes of a non-nil empty
	// slice is nil), so each transformation starts from a fresh Parse.
	std, _ := Parse(append([]byte(nil), in...)) // Parse aliases its input; Standardize writes to it
	std.Standardize()
	sb := std.Pack()
	v.StdHex = hex.EncodeToString(sb)
	dec := json.NewDecoder(bytes.NewReader(sb))
	dec.UseNumber()
	var cb strings.Builder
	if err := canonText(dec, &cb); err != nil {
		v.UnmarshalAnyErr = "canon: " + err.Error()
	} else {
		v.Canon = cb.String()
	}
	var anyv any
	if err := json.Unmarshal(sb, &anyv); err != nil {
		v.UnmarshalAnyErr = err.Error()
	}
	f, _ := Parse(append([]byte(nil), in...))
	f.Format()
	fb := f.Pack()
	v.FormatHex = hex.EncodeToString(fb)
	if utf8.Valid(fb) {
		s := string(fb)
		v.Format = &s
	}
	return v
}

func sp(s string) *string { return &s }
func bp(b bool) *bool    { return &b }

// strLit evaluates a constant string expression: literals, + concatenation, s[:n].
func strLit(e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(e.Value)
		return s, err == nil
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		a, ok1 := strLit(e.X)
		b, ok2 := strLit(e.Y)
		return a + b, ok1 && ok2
	case *ast.ParenExpr:
		return strLit(e.X)
	}
	return "", false
}

func TestDumpVectors(t *testing.T) {
	var out []vec
	for i, tt := range testdata {
		v := run("json_test.go", fmt.Sprintf("testdata[%d]", i), []byte(tt.in))
		v.TestWantParseOK = bp(tt.wantErr == nil)
		if tt.wantErr != nil {
			v.TestWantErr = "hujson: " + strings.TrimPrefix(tt.wantErr.Error(), "hujson: ")
		}
		if tt.wantStd != "" {
			v.TestWantStd = sp(tt.wantStd)
		}
		out = append(out, v)
	}
	for i, tt := range testdataFormat {
		v := run("format_test.go", fmt.Sprintf("testdataFormat[%d]", i), []byte(tt.in))
		v.TestWantParseOK = bp(true)
		v.TestWantFormat = sp(strings.TrimPrefix(tt.want, "\n") + "\n")
		out = append(out, v)
	}
	for i, tt := range testdataPatch {
		v := run("patch_test.go", fmt.Sprintf("testdataPatch[%d].in", i), []byte(tt.in))
		v.TestWantParseOK = bp(true) // TestPatch t.Fatalf's on a Parse error
		out = append(out, v)
		out = append(out, run("patch_test.go", fmt.Sprintf("testdataPatch[%d].patch", i), []byte(tt.patch)))
	}
	// Inline inputs of the test files, found by syntax: Parse([]byte(LIT)) calls and the
	// {name, in, wantErr} literals of TestLineSeparators; TestFormatErrors's const.
	fset := token.NewFileSet()
	files, _ := filepath.Glob("*_test.go")
	for _, fn := range files {
		if strings.HasPrefix(fn, "zz_") {
			continue
		}
		f, err := parser.ParseFile(fset, fn, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				if id, ok := n.Fun.(*ast.Ident); ok && id.Name == "Parse" && len(n.Args) == 1 {
					if conv, ok := n.Args[0].(*ast.CallExpr); ok && len(conv.Args) == 1 {
						if s, ok := strLit(conv.Args[0]); ok {
							v := run(fn, "inline Parse at line "+strconv.Itoa(fset.Position(n.Pos()).Line), []byte(s))
							v.TestWantParseOK = bp(true)
							out = append(out, v)
						}
					}
				}
			case *ast.CompositeLit:
				var name, in, wantErr string
				var haveIn, haveName bool
				for _, el := range n.Elts {
					kv, ok := el.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					k, _ := kv.Key.(*ast.Ident)
					if k == nil {
						continue
					}
					s, ok := strLit(kv.Value)
					if !ok {
						continue
					}
					switch k.Name {
					case "name":
						name, haveName = s, true
					case "in":
						in, haveIn = s, true
					case "wantErr":
						wantErr = s
					}
				}
				if haveIn && haveName && fn == "json_test.go" {
					v := run(fn, "TestLineSeparators/"+name, []byte(in))
					v.TestWantParseOK = bp(wantErr == "")
					v.TestWantErr = wantErr
					out = append(out, v)
				}
			case *ast.GenDecl:
				if n.Tok == token.CONST && fn == "format_test.go" {
					for _, s := range n.Specs {
						vs := s.(*ast.ValueSpec)
						if len(vs.Values) == 1 {
							if str, ok := strLit(vs.Values[0]); ok && vs.Names[0].Name == "want" {
								v := run(fn, "TestFormatErrors", []byte(str))
								v.TestWantParseOK = bp(false)
								out = append(out, v)
							}
						}
					}
				}
			}
			return true
		})
	}
	// Extra inputs: the streaming standardizer's table (standardizer_test.go, an earlier
	// commit 7247dd03 of tailscale/hujson; the Standardizer is lexical, so only the Parse
	// column is meaningful) and aclc's edge cases. Read from files given in the environment.
	for _, env := range []string{"EXTRA_VECTORS"} {
		path := os.Getenv(env)
		if path == "" {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var extras []struct {
			File, Case, Hex string
		}
		if err := json.Unmarshal(b, &extras); err != nil {
			t.Fatal(err)
		}
		for _, e := range extras {
			in, err := hex.DecodeString(e.Hex)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, run(e.File, e.Case, in))
		}
	}
	b, err := json.MarshalIndent(out, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(os.Getenv("OUT"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d vectors", len(out))
}

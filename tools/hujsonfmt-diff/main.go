// Command hujsonfmt-diff compares `aclc fmt` with tailscale/hujson's Format, the code behind
// `hujsonfmt`, on the same inputs: files and folders given on the command line and, for each,
// variants with whitespace, comments and trailing commas inserted at random between tokens.
//
// It is a local check, not part of CI: it needs Go and the Go module proxy.
//
//	go run . -aclc ../../target/debug/aclc -variants 20 ../../testdata
//
// A `.json` file holding a conformance case ({"policy": {"text": ...}}) contributes its policy
// text; one holding format vectors ({"vectors": [{"in": ...}]}) each input; any other file
// its own text. Mismatches are written to -out for inspection.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/tailscale/hujson"
)

type input struct {
	name string
	text []byte
}

type result struct {
	input
	goOut   []byte
	goErr   error
	aclcOut []byte
	aclcRC  int
}

func main() {
	aclc := flag.String("aclc", "aclc", "path of the aclc binary")
	variants := flag.Int("variants", 10, "random variants per input")
	seed := flag.Int64("seed", 1, "seed of the variants")
	out := flag.String("out", "", "folder to write mismatches to (optional)")
	workers := flag.Int("workers", 2, "aclc processes at a time")
	random := flag.Int("random", 0, "documents generated from scratch")
	flag.Parse()

	var inputs []input
	for _, arg := range flag.Args() {
		inputs = append(inputs, collect(arg)...)
	}
	rng := rand.New(rand.NewSource(*seed))
	n := len(inputs)
	for i := 0; i < n; i++ {
		for v := 0; v < *variants; v++ {
			if text, ok := mutate(rng, inputs[i].text); ok {
				inputs = append(inputs, input{fmt.Sprintf("%s~%d", inputs[i].name, v), text})
			}
		}
	}

	for i := 0; i < *random; i++ {
		inputs = append(inputs, input{fmt.Sprintf("random-%d", i), generate(rng)})
	}

	jobs := make(chan input)
	results := make(chan result)
	var wg sync.WaitGroup
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for in := range jobs {
				results <- run(*aclc, in)
			}
		}()
	}
	go func() {
		for _, in := range inputs {
			jobs <- in
		}
		close(jobs)
		wg.Wait()
		close(results)
	}()

	var compared, same, bothRefuse, mismatch, aclcOnly, goOnly int
	for r := range results {
		compared++
		switch {
		case r.goErr != nil && r.aclcRC != 0:
			bothRefuse++
		case r.goErr != nil:
			goOnly++ // Go refuses, aclc formats
			report(*out, "go-refuses", r)
		case r.aclcRC != 0:
			aclcOnly++ // aclc refuses, Go formats
			report(*out, "aclc-refuses", r)
		case bytes.Equal(r.goOut, r.aclcOut):
			same++
		default:
			mismatch++
			report(*out, "mismatch", r)
		}
	}
	fmt.Printf("inputs compared: %d\nidentical output: %d\nmismatched output: %d\nrefused by both: %d\nrefused by aclc only: %d\nrefused by hujson only: %d\n",
		compared, same, mismatch, bothRefuse, aclcOnly, goOnly)
	if mismatch > 0 {
		os.Exit(1)
	}
}

func run(aclc string, in input) result {
	r := result{input: in}
	r.goOut, r.goErr = hujson.Format(append([]byte(nil), in.text...))
	cmd := exec.Command(aclc, "fmt", "-")
	cmd.Stdin = bytes.NewReader(in.text)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	err := cmd.Run()
	r.aclcOut = stdout.Bytes()
	if exit, ok := err.(*exec.ExitError); ok {
		r.aclcRC = exit.ExitCode()
	} else if err != nil {
		fmt.Fprintf(os.Stderr, "cannot run %s: %v\n", aclc, err)
		os.Exit(2)
	}
	return r
}

var reported = map[string]int{}

func report(dir, kind string, r result) {
	fmt.Printf("%s: %s\n", kind, r.name)
	if dir == "" || reported[kind] >= 20 {
		return
	}
	reported[kind]++
	base := filepath.Join(dir, fmt.Sprintf("%s-%d", kind, reported[kind]))
	os.MkdirAll(dir, 0o755)
	os.WriteFile(base+".in", r.text, 0o644)
	os.WriteFile(base+".go", r.goOut, 0o644)
	os.WriteFile(base+".aclc", r.aclcOut, 0o644)
}

// collect reads the inputs of one command-line argument.
func collect(arg string) []input {
	var inputs []input
	filepath.WalkDir(arg, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ext := filepath.Ext(path)
		if ext != ".json" && ext != ".hujson" {
			return nil
		}
		text, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if ext == ".json" {
			var doc struct {
				Policy *struct {
					Text *string `json:"text"`
				} `json:"policy"`
				Vectors []struct {
					In   string `json:"in"`
					Want string `json:"want"`
				} `json:"vectors"`
			}
			if json.Unmarshal(text, &doc) == nil {
				if doc.Policy != nil && doc.Policy.Text != nil {
					inputs = append(inputs, input{path, []byte(*doc.Policy.Text)})
					return nil
				}
				if len(doc.Vectors) > 0 {
					for i, v := range doc.Vectors {
						inputs = append(inputs, input{fmt.Sprintf("%s#%d", path, i), []byte(v.In)})
						inputs = append(inputs, input{fmt.Sprintf("%s#%d.want", path, i), []byte(v.Want)})
					}
					return nil
				}
			}
		}
		inputs = append(inputs, input{path, text})
		return nil
	})
	return inputs
}

// Trivia inserted between tokens.
var trivia = []string{
	" ", "\n", "\r\n", "\t", "\n\n\n", "  \n\t ", "/* c */", "// c\n", " // trailing\r\n",
	"/*\n   * starred\n   */", "/* one\n  two\n\n  three */", "/**/", "\n// own line\n",
	" /* a */ /* b */ ", "\n/*\nx\n*/\n", " // " + strings.Repeat("long ", 20) + "\n",
}

// mutate inserts trivia at random token boundaries, adds trailing commas and joins lines;
// returns false if the result is not valid HuJSON.
func mutate(rng *rand.Rand, text []byte) ([]byte, bool) {
	var out []byte
	rate := []float64{0.02, 0.1, 0.3}[rng.Intn(3)]
	joinRate := []float64{0, 0.3, 0.9}[rng.Intn(3)]
	lastSignificant := byte(0)
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == '"':
			j := i + 1
			for j < len(text) && text[j] != '"' {
				if text[j] == '\\' {
					j++
				}
				j++
			}
			if j < len(text) {
				j++
			}
			out = append(out, text[i:j]...)
			lastSignificant = '"'
			i = j
			continue
		case c == '/' && i+1 < len(text) && (text[i+1] == '/' || text[i+1] == '*'):
			end := []byte("\n")
			if text[i+1] == '*' {
				end = []byte("*/")
			}
			k := bytes.Index(text[i+2:], end)
			j := len(text)
			if k >= 0 {
				j = i + 2 + k + len(end)
			}
			out = append(out, text[i:j]...)
			i = j
			continue
		case c == '\n' && rng.Float64() < joinRate && !lineCommentOpen(out):
			out = append(out, ' ')
			i++
			continue
		case strings.IndexByte("{}[],:", c) >= 0:
			if (c == '}' || c == ']') && lastSignificant != '{' && lastSignificant != '[' &&
				lastSignificant != ',' && rng.Float64() < rate {
				out = append(out, ',')
			}
			if rng.Float64() < rate {
				out = append(out, trivia[rng.Intn(len(trivia))]...)
			}
			out = append(out, c)
			if rng.Float64() < rate {
				out = append(out, trivia[rng.Intn(len(trivia))]...)
			}
			lastSignificant = c
			i++
			continue
		case c != ' ' && c != '\t' && c != '\r' && c != '\n':
			lastSignificant = c
		}
		out = append(out, c)
		i++
	}
	if _, err := hujson.Parse(out); err != nil {
		return nil, false
	}
	return out, true
}

// lineCommentOpen reports whether out ends inside a line comment.
func lineCommentOpen(out []byte) bool {
	line := out[bytes.LastIndexByte(out, '\n')+1:]
	inString := false
	for i := 0; i < len(line); i++ {
		switch {
		case inString && line[i] == '\\':
			i++
		case line[i] == '"':
			inString = !inString
		case !inString && line[i] == '/' && i+1 < len(line) && line[i+1] == '/':
			return true
		}
	}
	return false
}

// Strings (as JSON text) and numbers a generated document draws from: escapes of every kind,
// non-ASCII, widths that push lines past 80 bytes.
var scalars = []string{
	`null`, `true`, `false`, `0`, `-0`, `1.5e+10`, `1E400`, `12345678901234567890`,
	`""`, `"a"`, `"tag:web"`, `"\u0041\/\n\t\"\\"`, `"\u00e9\ud83d\ude02"`, `"\u001f\u007f"`,
	`"é😀 "`, `"` + strings.Repeat("x", 30) + `"`, `"autogroup:member"`, `"\b\f\r"`,
}

var keys = []string{`"a"`, `"src"`, `"action"`, `"dst"`, `"k\u0065y"`, `"é"`, `"a"`,
	`"` + strings.Repeat("long", 8) + `"`, `""`}

var gaps = []string{
	"", "", "", " ", "\n", "\n\t\t", "\r\n", "\n\n\n\n", "\r", "\n\r", " /* b */ ",
	"// line\n", "// trailing spaces \t \n", "/* multi\n   * line\n   */", "/*\n\tx\n\n\ty\n\t*/",
	"\n  /* a */\n  // b\n", "// nbsp\u00a0\n", "/* x */\n", "\t//\r\n",
}

func generate(rng *rand.Rand) []byte {
	var b strings.Builder
	gap := func() {
		if rng.Intn(3) == 0 {
			b.WriteString(gaps[rng.Intn(len(gaps))])
		}
	}
	var value func(depth int)
	value = func(depth int) {
		gap()
		switch r := rng.Intn(10); {
		case depth > 4 || r < 4:
			b.WriteString(scalars[rng.Intn(len(scalars))])
		case r < 7:
			b.WriteString("[")
			n := rng.Intn(5)
			for i := 0; i < n; i++ {
				if i > 0 {
					gap()
					b.WriteString(",")
				}
				value(depth + 1)
			}
			if n > 0 && rng.Intn(2) == 0 {
				gap()
				b.WriteString(",")
			}
			gap()
			b.WriteString("]")
		default:
			b.WriteString("{")
			n := rng.Intn(5)
			for i := 0; i < n; i++ {
				if i > 0 {
					gap()
					b.WriteString(",")
				}
				gap()
				b.WriteString(keys[rng.Intn(len(keys))])
				gap()
				b.WriteString(":")
				value(depth + 1)
			}
			if n > 0 && rng.Intn(2) == 0 {
				gap()
				b.WriteString(",")
			}
			gap()
			b.WriteString("}")
		}
		gap()
	}
	value(0)
	if rng.Intn(4) == 0 {
		b.WriteString("// end\n")
	}
	return []byte(b.String())
}

package pipeline

import (
	"strings"
	"testing"
)

// wrapRegistry has a kind "wrap" whose `base` table holds the keys of nestedRegistry's "net"
// kind (a search stage's base holds a train stage's): New decodes it with Nested and builds a
// net stage from it.
func wrapRegistry(t *testing.T) *Registry {
	t.Helper()
	r := nestedRegistry(t)
	net, _ := r.Kind("net")
	var fields []Field
	for _, f := range net.Fields {
		if f.Type != TypeInput {
			fields = append(fields, f)
		}
	}
	r.MustRegister(KindSpec{
		Kind: "wrap", Shape: ShapeTrain, Doc: "Wraps a net's settings.",
		Fields: []Field{
			{Name: "input", Type: TypeInput, Port: PortTable, Doc: "The table."},
			{Name: "base", Type: TypeTable, Doc: "A net stage's keys."},
		},
		Outputs: func(*StageConfig) []Port { return nil },
		New: func(c *StageConfig) (Stage, error) {
			sub, err := c.Nested("base", c.Table("base"), fields, map[string]string{"input": "set it on the wrap stage"})
			if err != nil {
				return nil, err
			}
			if sub.Name != c.Name {
				return nil, c.Errorf("base", "the nested config names stage %q", sub.Name)
			}
			return net.New(sub)
		},
	})
	return r
}

// TestNestedDecodesLikeAStage: a table decoded with Nested gets the nested kind's checks at
// its own line and column under its key (unknown key with a hint, range, enum), its defaults
// and IsSet, and its kind's own checks (New's Errorf) point under the key too.
func TestNestedDecodesLikeAStage(t *testing.T) {
	reg := wrapRegistry(t)
	bad := `[stages.w]
kind = "wrap"
base = { layers = [ { dense = 0 } ],
         optimizer = { name = "adamm" },
         input = "x",
         pickyy = true }
`
	_, err := Parse([]byte(bad), "w.toml", ".", reg, LoadOptions{})
	if err == nil {
		t.Fatal("want errors")
	}
	ces := ConfigErrors(err)
	want := []struct {
		key       string
		line, col int
		part      string
	}{
		{"base.layers[0].dense", 3, 23, "below the minimum 1"},
		{"base.optimizer.name", 4, 24, `did you mean "adam"?`},
		{"base.input", 5, 10, "set it on the wrap stage"},
		{"base.pickyy", 6, 10, `did you mean "picky"?`},
	}
	if len(ces) != len(want) {
		t.Fatalf("%d errors, want %d:\n%v", len(ces), len(want), err)
	}
	for i, w := range want {
		ce := ces[i]
		if ce.Key != w.key || ce.Line != w.line || ce.Col != w.col || ce.Stage != "w" || !strings.Contains(ce.Error(), w.part) {
			t.Errorf("error %d: %s (key %q at %d:%d), want key %q at %d:%d with %q", i, ce, ce.Key, ce.Line, ce.Col, w.key, w.line, w.col, w.part)
		}
	}

	// The nested kind's own check (New's Errorf) points under base, at the value's position.
	_, err = Parse([]byte("[stages.w]\nkind = \"wrap\"\nbase = { picky = true }\n"), "w.toml", ".", reg, LoadOptions{})
	ces = ConfigErrors(err)
	if len(ces) != 1 || ces[0].Key != "base.picky" || ces[0].Line != 3 || ces[0].Col != 10 || !strings.Contains(ces[0].Msg, "refused by New") {
		t.Fatalf("New's error: %v", err)
	}

	// Defaults are filled in, IsSet tells what was written.
	p, err := Parse([]byte("[stages.w]\nkind = \"wrap\"\nbase = { optimizer = { lr = 0.1 } }\n"), "w.toml", ".", reg, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := p.Stage("w")
	sub, err := c.Nested("base", c.Table("base"), []Field{{Name: "optimizer", Type: TypeTable, Fields: []Field{
		{Name: "name", Type: TypeString, Default: "adam"}, {Name: "lr", Type: TypeFloat}}}, {Name: "epochs", Type: TypeInt, Default: int64(7)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sub.Int("epochs") != 7 || sub.IsSet("epochs") || !sub.IsSet("optimizer") || sub.Table("optimizer")["name"] != "adam" || sub.Table("optimizer")["lr"] != 0.1 {
		t.Errorf("nested values: epochs %d (set %v), optimizer %v", sub.Int("epochs"), sub.IsSet("epochs"), sub.Table("optimizer"))
	}
	// A value that is not in the file (a variant of the table) points at the nearest table.
	_, err = c.Nested("base", map[string]any{"epochs": "many"}, []Field{{Name: "epochs", Type: TypeInt}}, nil)
	ces = ConfigErrors(err)
	if len(ces) != 1 || ces[0].Key != "base.epochs" || ces[0].Line != 3 || ces[0].Col != 1 {
		t.Fatalf("variant's error: %v (%+v)", err, ces)
	}
}

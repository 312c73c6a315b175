package nn_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"github.com/pipe-ml/pipe/nn"
)

// A two-task model from the JSON form of a spec (what a train stage's layers table maps to).
func ExampleBuild() {
	const js = `{
	  "num_inputs": 64,
	  "layers": [
	    {"dense": 128, "activation": "relu", "dropout": 0.2},
	    {"dense": 64, "activation": "relu"}
	  ],
	  "heads": [
	    {"name": "digit", "kind": "softmax", "classes": 10, "target": "target"},
	    {"name": "parity", "kind": "binary", "loss_weight": 0.5}
	  ]
	}`
	var spec nn.Spec
	if err := json.Unmarshal([]byte(js), &spec); err != nil {
		fmt.Println(err)
		return
	}
	m, err := nn.Build(spec, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(m.Summary())
	// Output:
	// layer            kind          output  params  share
	// dense_1          dense         [128]   8320    48.1%
	// dense_1_dropout  dropout       [128]   0       0.0%
	// dense_2          dense         [64]    8256    47.7%
	// head_digit       head:softmax  [10]    650     3.8%
	// head_parity      head:binary   [2]     65      0.4%
	// total trainable parameters: 17291
}

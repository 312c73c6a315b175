package datasets

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/pipe-ml/pipe/schema"
)

// Column types of the declared schemas.
var (
	int64Type   = arrow.PrimitiveTypes.Int64
	float64Type = arrow.PrimitiveTypes.Float64
	float32Type = arrow.PrimitiveTypes.Float32
	stringType  = arrow.BinaryTypes.String
)

// declaredColumns are the columns of each embedded CSV, in file order, with their types:
// integer pixel and count columns int64, measurements float64, categoricals utf8. The
// target is the last column.
var declaredColumns = map[string][]arrow.Field{
	"iris": append(typed(float64Type, "sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"),
		typed(int64Type, "target")...),
	"wine": append(typed(float64Type, "alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium",
		"total_phenols", "flavanoids", "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue",
		"od280_od315_of_diluted_wines", "proline"),
		typed(int64Type, "target")...),
	"breast_cancer": append(typed(float64Type, "mean_radius", "mean_texture", "mean_perimeter", "mean_area",
		"mean_smoothness", "mean_compactness", "mean_concavity", "mean_concave_points", "mean_symmetry",
		"mean_fractal_dimension", "radius_error", "texture_error", "perimeter_error", "area_error",
		"smoothness_error", "compactness_error", "concavity_error", "concave_points_error", "symmetry_error",
		"fractal_dimension_error", "worst_radius", "worst_texture", "worst_perimeter", "worst_area",
		"worst_smoothness", "worst_compactness", "worst_concavity", "worst_concave_points", "worst_symmetry",
		"worst_fractal_dimension"),
		typed(int64Type, "target")...),
	// age in years and sex coded 1/2 are integers; the rest are (unscaled) measurements and the
	// regression target is a quantity.
	"diabetes": append(typed(int64Type, "age", "sex"),
		typed(float64Type, "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6", "target")...),
	"digits": append(typed(int64Type, digitsPixels()...), typed(int64Type, "target")...),
	"credit_data": concat(
		typed(int64Type, "seniority"), typed(stringType, "home"), typed(int64Type, "time", "age"),
		typed(stringType, "marital", "records", "job"),
		typed(int64Type, "expenses", "income", "assets", "debt", "amount", "price"),
		typed(stringType, "target")),
}

func typed(t arrow.DataType, names ...string) []arrow.Field {
	out := make([]arrow.Field, len(names))
	for i, n := range names {
		out[i] = arrow.Field{Name: n, Type: t, Nullable: true}
	}
	return out
}

func concat(parts ...[]arrow.Field) []arrow.Field {
	var out []arrow.Field
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func digitsPixels() []string {
	var out []string
	for r := 0; r < 8; r++ {
		for c := 0; c < 8; c++ {
			out = append(out, fmt.Sprintf("pixel_%d_%d", r, c))
		}
	}
	return out
}

// mnistFields are MNIST's columns: px0..px783 float32 (raw 0..255), target int64.
func mnistFields() []arrow.Field {
	out := make([]arrow.Field, 0, mnistPixels+2)
	for p := 0; p < mnistPixels; p++ {
		out = append(out, arrow.Field{Name: fmt.Sprintf("px%d", p), Type: float32Type})
	}
	return append(out, arrow.Field{Name: "target", Type: int64Type})
}

// Schema returns the declared schema of a dataset as Open returns it with zero Options:
// the target column has pipe.role = target; MNIST also has original_split (role split).
func Schema(name string) (*arrow.Schema, error) {
	var fields []arrow.Field
	if name == "mnist" {
		fields = append(mnistFields(), arrow.Field{Name: "original_split", Type: stringType})
	} else {
		cols, ok := declaredColumns[name]
		if !ok {
			_, err := Lookup(name)
			if err == nil {
				err = fmt.Errorf("dataset %q has no declared schema", name)
			}
			return nil, err
		}
		fields = append([]arrow.Field(nil), cols...)
	}
	for i, f := range fields {
		switch f.Name {
		case "target":
			fields[i] = schema.WithRole(f, schema.RoleTarget)
		case "original_split":
			fields[i] = schema.WithRole(f, schema.RoleSplit)
		}
	}
	return arrow.NewSchema(fields, nil), nil
}

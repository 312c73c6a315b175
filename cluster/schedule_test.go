package cluster

import (
	"errors"
	"strings"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
)

// TestCheckCron: the forms Temporal reads pass; a wrong number of fields, an unknown shorthand
// or a stray character is refused with the spec and an example in the message.
func TestCheckCron(t *testing.T) {
	for _, spec := range []string{"0 2 * * *", "*/15 * * * MON-FRI", "0 0 2 * * * 2027", "CRON_TZ=Europe/Paris 0 2 * * *",
		"@daily", "@every 6h", "0 2 * * 5#3", "0 2 * * * # nightly"} {
		if err := CheckCron(spec); err != nil {
			t.Errorf("CheckCron(%q): %v", spec, err)
		}
	}
	for spec, want := range map[string]string{
		"":                          "empty",
		"0 2 * *":                   "4 fields",
		"0 2 * * * * * *":           "8 fields",
		"@nightly":                  "unknown shorthand",
		"@every":                    "@every takes one interval",
		"0 2 * * $":                 `field 5 ("$")`,
		"TZ=Mars/Olympus 0 2 * * *": "unknown time zone",
	} {
		err := CheckCron(spec)
		if err == nil || !errors.Is(err, ErrBadSchedule) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), `"0 2 * * *"`) {
			t.Errorf("CheckCron(%q) = %v, want an error saying %q with an example", spec, err, want)
		}
	}
}

// TestParseOverlap: skip by default, every policy by its name, a wrong one refused with a
// suggestion.
func TestParseOverlap(t *testing.T) {
	if p, err := ParseOverlap(""); err != nil || p != enumspb.SCHEDULE_OVERLAP_POLICY_SKIP {
		t.Errorf("default: %v %v", p, err)
	}
	for _, name := range overlapNames {
		p, err := ParseOverlap(name)
		if err != nil || overlapName(p) != name {
			t.Errorf("%s: %v %v", name, p, err)
		}
	}
	for _, bad := range []string{"skipp", "SKIP", "unspecified"} {
		if _, err := ParseOverlap(bad); err == nil || !errors.Is(err, ErrBadSchedule) || !strings.Contains(err.Error(), "buffer_one") {
			t.Errorf("ParseOverlap(%q) = %v", bad, err)
		}
	}
	if _, err := ParseOverlap("skipp"); !strings.Contains(err.Error(), `did you mean "skip"`) {
		t.Errorf("no suggestion: %v", err)
	}
}

func TestCheckScheduleName(t *testing.T) {
	for _, ok := range []string{"nightly", "digits.v2", "a-b_c", "9am"} {
		if err := CheckScheduleName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-x", "a/b", "a b", "..", strings.Repeat("a", 201)} {
		if err := CheckScheduleName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

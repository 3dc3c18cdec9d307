package routing

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// psychScalar follows Psych's ScalarScanner#tokenize for plain scalars.
func TestPsychScalar(t *testing.T) {
	tests := []struct {
		in   string
		kind rubyKind
		text string
	}{
		{"", rubyNil, ""},
		{"~", rubyNil, ""},
		{"null", rubyNil, ""},
		{"NULL", rubyNil, ""},
		{"nUlL", rubyNil, ""},
		{"yes", rubyTrue, ""},
		{"True", rubyTrue, ""},
		{"on", rubyTrue, ""},
		{"no", rubyFalse, ""},
		{"OFF", rubyFalse, ""},
		{"false", rubyFalse, ""},
		{"y", rubyString, "y"},
		{"n", rubyString, "n"},
		{"nulls", rubyString, "nulls"},
		{"yes please", rubyString, "yes please"},
		{"on\nno", rubyTrue, ""}, // a line of its own is on
		{"\nno", rubyString, "\nno"},
		{"urgency=high", rubyString, "urgency=high"},
		{"=", rubyString, "="},
		{":", rubyString, ":"},
		{":low", rubySymbol, "low"},
		{":'add-on_provisioning'", rubySymbol, "add-on_provisioning"},
		{`:"a b"`, rubySymbol, "a b"},
		{":'x", rubySymbol, "'x"},
		{"5", rubyInteger, "5"},
		{"-5", rubyInteger, "-5"},
		{"+5", rubyInteger, "5"},
		{"1_000", rubyInteger, "1000"},
		{"1,000", rubyInteger, "1000"},
		{"017", rubyInteger, "15"},
		{"0x1F", rubyInteger, "31"},
		{"0b101", rubyInteger, "5"},
		{"99999999999999999999", rubyInteger, "99999999999999999999"},
		{"1:30", rubyInteger, "5400"},
		{"1:30:00", rubyInteger, "5400"},
		{"1.5", rubyFloat, "1.5"},
		{"1.", rubyFloat, "1.0"},
		{".5", rubyFloat, "0.5"},
		{"1.0e+20", rubyFloat, "1.0e+20"},
		{"1_000.5", rubyFloat, "1000.5"},
		{".inf", rubyFloat, "Infinity"},
		{"-.Inf", rubyFloat, "-Infinity"},
		{".NaN", rubyFloat, "NaN"},
		{".", rubyString, "."},
		{"1e3", rubyString, "1e3"},
		{"08", rubyString, "08"}, // not octal, not decimal
		{"2024-01-02", rubyDate, "2024-01-02"},
		{"2024-1-2", rubyDate, "2024-01-02"},
		{"2024-02-30", rubyString, "2024-02-30"},
		{"2024-01-02 10:00:00", rubyTime, ""},
		{"2024-01-02T10:00:00Z", rubyTime, ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			v := psychScalar(tt.in)
			require.Equal(t, tt.kind, v.kind, "%+v", v)
			require.Equal(t, tt.text, v.text)
			require.NotEmpty(t, v.what())
		})
	}
}

func TestRubyFloatString(t *testing.T) {
	tests := []struct {
		f    float64
		want string
	}{
		{0, "0.0"},
		{math.Copysign(0, -1), "-0.0"},
		{1, "1.0"},
		{-2.5, "-2.5"},
		{100, "100.0"},
		{1e15, "1000000000000000.0"},
		{1e16, "1.0e+16"},
		{1.5e16, "1.5e+16"},
		{0.0001, "0.0001"},
		{0.00001, "1.0e-05"},
		{0.1, "0.1"},
		{123456.789, "123456.789"},
		{math.Inf(1), "Infinity"},
		{math.NaN(), "NaN"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, rubyFloatString(tt.f), "%v", tt.f)
	}
}

func TestRubyBlank(t *testing.T) {
	require.True(t, rubyValue{kind: rubyNil}.blank())
	require.True(t, rubyValue{kind: rubyFalse}.blank())
	require.True(t, rubyValue{kind: rubyString, text: " \t\u00a0\u3000"}.blank())
	require.False(t, rubyValue{kind: rubyString, text: " x "}.blank())
	require.True(t, rubyValue{kind: rubySymbol}.blank())
	require.False(t, rubyValue{kind: rubySymbol, text: " "}.blank()) // Symbol#blank? is empty?
	require.False(t, rubyValue{kind: rubyTrue}.blank())
}

package bbm_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/bbm"
)

func TestParseTableName(t *testing.T) {
	for in, want := range map[string]bbm.TableName{
		"items":                 {Name: "items"},
		"Items":                 {Name: "items"},
		"public.items":          {Schema: "public", Name: "items"},
		`"Weird Schema"."A b"`:  {Schema: "Weird Schema", Name: "A b"},
		`"has""quote"`:          {Name: `has"quote`},
		`"users; DROP TABLE x"`: {Name: "users; DROP TABLE x"}, // quoted: one (odd) name, harmless
		"_t$1":                  {Name: "_t$1"},
	} {
		got, err := bbm.ParseTableName(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{
		"", "users; DROP TABLE x", `"x"."y"."z"`, "a.b.c", "a.", ".a", "a..b", `"unterminated`, `""`,
		"1abc", "a b", "a-b", "items--", `items"`, "a\x00b", string(make([]byte, 64)),
		"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklm", // 65 bytes
	} {
		_, err := bbm.ParseTableName(in)
		require.ErrorIs(t, err, bbm.ErrInvalidTable, "%q", in)
	}
}

func TestParseColumnName(t *testing.T) {
	got, err := bbm.ParseColumnName(`"Mixed Col"`)
	require.NoError(t, err)
	require.Equal(t, "Mixed Col", got)
	for _, in := range []string{"", "a.b", "id; --", `"`} {
		_, err := bbm.ParseColumnName(in)
		require.ErrorIs(t, err, bbm.ErrInvalidColumn, "%q", in)
	}
}

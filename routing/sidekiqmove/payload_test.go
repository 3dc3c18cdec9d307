package sidekiqmove

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseJob(t *testing.T) {
	raw := `{"retry":true,"queue":"elastic_commit_indexer","args":[12345678901234567890,{"queue":"nested"}],"class":"ElasticCommitIndexerWorker","jid":"b4a5","created_at":1700000000.1234567,"enqueued_at":1700000001.5}`
	j, err := parseJob(raw)
	require.NoError(t, err)
	require.Equal(t, "ElasticCommitIndexerWorker", j.worker)
	require.Equal(t, "elastic_commit_indexer", j.queue)
	require.Equal(t, `"elastic_commit_indexer"`, raw[j.queueStart:j.queueEnd])
	moved := j.withQueue(raw, "search<&>")
	require.Equal(t, strings.Replace(raw, `"queue":"elastic_commit_indexer"`, `"queue":"search<&>"`, 1), moved,
		"only the top-level queue changes; big integers, floats and the nested queue stay as they were")

	spaced := "{ \"class\" : \"A\" ,\n \"queue\" :\t\"q\\u00e9\" }"
	j, err = parseJob(spaced)
	require.NoError(t, err)
	require.Equal(t, "qé", j.queue)
	require.Equal(t, "{ \"class\" : \"A\" ,\n \"queue\" :\t\"new\" }", j.withQueue(spaced, "new"))

	aj, err := parseJob(`{"class":"Sidekiq::ActiveJob::Wrapper","wrapped":"ActionMailer::MailDeliveryJob","queue":"mailers","args":[{}]}`)
	require.NoError(t, err)
	require.Equal(t, "ActionMailer::MailDeliveryJob", aj.worker)
}

func TestParseJobMalformed(t *testing.T) {
	for raw, msg := range map[string]string{
		``:                                      "not JSON",
		`not json`:                              "not JSON",
		`[1,2]`:                                 "not a JSON object",
		`{"class":"A","queue":"q"`:              "not JSON",
		`{"class":"A","queue":"q"} x`:           "data after the object",
		`{"class":"A","queue":"q"}{}`:           "data after the object",
		`{"queue":"q"}`:                         `no "class"`,
		`{"class":"","queue":"q"}`:              `no "class"`,
		`{"class":"A"}`:                         `no "queue"`,
		`{"class":5,"queue":"q"}`:               `"class" is not a string`,
		`{"class":"A","queue":null}`:            `"queue" is not a string`,
		`{"class":"A","queue":"q","queue":"r"}`: `key "queue" given twice`,
		`{"class":"A","queue":"q","args":[1,}`:  "not JSON",
	} {
		_, err := parseJob(raw)
		require.ErrorContains(t, err, msg, "%q", raw)
	}
}

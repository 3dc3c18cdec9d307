// Package bbmcmd is the set of commands operators run against bbm
// migrations, for a host to mount into its own command-line tool (it uses
// the standard library's flag package and writes to the writers it is
// given):
//
//	status [-json] [NAME...]   state, progress %, rows, rows/s, ETA, delivery, failed jobs with their last error
//	pause NAME...              stop starting jobs of migrations (running jobs finish)
//	resume NAME...             make paused migrations active again
//	retry NAME...              put failed migrations back to running, their failed jobs' attempts reset
//	run NAME...                run migrations to the end in this process, with a progress bar on a terminal
//	wait [-timeout D] NAME...  wait until migrations are finished (run elsewhere), failing if one fails
//	require NAME...            a deploy gate: fail, listing progress and ETA, unless all are finished
//
// A host wires it as
//
//	w := bbm.NewSyncWorker(db, bbm.Options{})
//	w.Register(myWorks...)
//	err := bbmcmd.Run(ctx, os.Args[2:], bbmcmd.Options{Worker: w, Name: "registry background-migrations"})
package bbmcmd

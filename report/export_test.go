package report

// FixtureReport gives the browser test (package report_test) the hand-made report.
var FixtureReport = fixtureReport

// FixtureAllFailed gives it the fixture whose search's trials all failed.
var FixtureAllFailed = fixtureAllFailed

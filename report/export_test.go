package report

// FixtureReport gives the browser test (package report_test) the hand-made report.
var FixtureReport = fixtureReport

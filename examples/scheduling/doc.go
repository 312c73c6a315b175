// Package scheduling holds no code: its directory holds the examples of running pipe as a
// scheduled job (a crontab line, and a systemd service with its timer), and its test runs them
// as the scheduler would: the cron line twice at once, of which exactly one runs and the other
// is refused by the run directory's lock; the service's command; and systemd-analyze verify on
// the units when it is installed. README.md explains them.
package scheduling

// Package stages holds pipe's built-in stage kinds. Each is a thin adapter from its TOML table
// to the packages that compute (features, nn, ensemble, datasets, table I/O); Register installs
// them all into a Registry. This is the one package where the engine meets the ML packages.
package stages

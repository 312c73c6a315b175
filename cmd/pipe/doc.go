// Command pipe is the command-line front end of pipe. It parses flags and calls the library;
// package cli holds the commands so that tests can run them in-process.
package main

// Command ensemble measures how a bagged ensemble's wall time scales with the split of a
// machine's cores between members trained at once and GEMM threads per member (issue #20):
// an 8-member bag of MLPs on MNIST or digits, trained by ensemble.Train with Workers = members
// at once and MemberWorkers = GEMM threads each, for every split given, repeated and
// interleaved. It checks that every split gives the same ensemble (validation score of the
// mean combiner, bit for bit). See README.md for the figures and run.sh to rerun them.
package main

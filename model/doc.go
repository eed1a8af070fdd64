// Package model is the sample model the stages share: batches of raw stacks, processes, losses.
// It imports only the standard library, so reading a batch links nothing of the stage that made it.
package model

// Package schema is the shape of Ember's profiles, written down once: the
// sample types a profile may carry, the labels on its samples, and the
// rules for the labels a user adds. The symbolizer builds profiles of this
// shape, the store keeps and returns them, and the command checks host
// labels against it. It imports nothing of Ember's, so every stage can.
package schema

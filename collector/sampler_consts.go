package collector

import (
	"github.com/ember-profiler/ember/bpf"
	"github.com/ember-profiler/ember/model"
)

// UnwindEnd and UserStackSource are part of the sample model, which does
// not import package bpf, but a stored stack's status and a sample's source
// are converted to them as they are. Each line below fails to compile when
// a value differs from sampler.bpf.c's: the index is then out of range, or
// the difference overflows.
var (
	_ = [1]struct{}{}[model.UnwindEnd(bpf.SamplerUnwindEndUNWIND_END_UNKNOWN)-model.UnwindUnknown]
	_ = [1]struct{}{}[model.UnwindEnd(bpf.SamplerUnwindEndUNWIND_END_COMPLETE)-model.UnwindComplete]
	_ = [1]struct{}{}[model.UnwindEnd(bpf.SamplerUnwindEndUNWIND_END_DEPTH)-model.UnwindDepth]
	_ = [1]struct{}{}[model.UnwindEnd(bpf.SamplerUnwindEndUNWIND_END_NO_MAPPING)-model.UnwindNoMapping]
	_ = [1]struct{}{}[model.UnwindEnd(bpf.SamplerUnwindEndUNWIND_END_NO_ROW)-model.UnwindNoRow]
	_ = [1]struct{}{}[model.UnwindEnd(bpf.SamplerUnwindEndUNWIND_END_UNSUPPORTED)-model.UnwindUnsupported]
	_ = [1]struct{}{}[model.UnwindEnd(bpf.SamplerUnwindEndUNWIND_END_READ_FAILED)-model.UnwindReadFailed]
	_ = [1]struct{}{}[model.UnwindEnd(bpf.SamplerUnwindEndUNWIND_END_BAD_FRAME)-model.UnwindBadFrame]
	_ = [1]struct{}{}[model.UnwindEnd(bpf.SamplerUnwindEndUNWIND_END_NO_TABLE)-model.UnwindNoTable]
	_ = [1]struct{}{}[int(bpf.SamplerUnwindEndUNWIND_END_MAX)-model.UnwindEndCount]

	_ = [1]struct{}{}[model.UserStackSource(bpf.SamplerUserStackSourceUSER_STACK_KERNEL_FP)-model.SourceKernelFP]
	_ = [1]struct{}{}[model.UserStackSource(bpf.SamplerUserStackSourceUSER_STACK_UNWOUND)-model.SourceUnwinder]
)

package collector

import "github.com/ember-profiler/ember/bpf"

// UnwindEnd and UserStackSource are part of the sample model, which does
// not import package bpf, but a stored stack's status and a sample's source
// are converted to them as they are. Each line below fails to compile when
// a value differs from sampler.bpf.c's: the index is then out of range, or
// the difference overflows.
var (
	_ = [1]struct{}{}[UnwindEnd(bpf.SamplerUnwindEndUNWIND_END_UNKNOWN)-UnwindUnknown]
	_ = [1]struct{}{}[UnwindEnd(bpf.SamplerUnwindEndUNWIND_END_COMPLETE)-UnwindComplete]
	_ = [1]struct{}{}[UnwindEnd(bpf.SamplerUnwindEndUNWIND_END_DEPTH)-UnwindDepth]
	_ = [1]struct{}{}[UnwindEnd(bpf.SamplerUnwindEndUNWIND_END_NO_MAPPING)-UnwindNoMapping]
	_ = [1]struct{}{}[UnwindEnd(bpf.SamplerUnwindEndUNWIND_END_NO_ROW)-UnwindNoRow]
	_ = [1]struct{}{}[UnwindEnd(bpf.SamplerUnwindEndUNWIND_END_UNSUPPORTED)-UnwindUnsupported]
	_ = [1]struct{}{}[UnwindEnd(bpf.SamplerUnwindEndUNWIND_END_READ_FAILED)-UnwindReadFailed]
	_ = [1]struct{}{}[UnwindEnd(bpf.SamplerUnwindEndUNWIND_END_BAD_FRAME)-UnwindBadFrame]
	_ = [1]struct{}{}[UnwindEnd(bpf.SamplerUnwindEndUNWIND_END_NO_TABLE)-UnwindNoTable]
	_ = [1]struct{}{}[UnwindEnd(bpf.SamplerUnwindEndUNWIND_END_MAX)-unwindEnds]

	_ = [1]struct{}{}[UserStackSource(bpf.SamplerUserStackSourceUSER_STACK_KERNEL_FP)-SourceKernelFP]
	_ = [1]struct{}{}[UserStackSource(bpf.SamplerUserStackSourceUSER_STACK_UNWOUND)-SourceUnwinder]
)

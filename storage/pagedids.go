package storage

// pagedIDs maps dictionary ids to int32s (0 for none) in pages allocated
// as ids are set: a query meets a small part of the ids ever given out,
// mostly recent runs of them, and ids are never reused, so a slice by id
// grew with the store's whole history, 4 bytes per id ever given out, for
// every query.
type pagedIDs struct {
	pages []*[pagedIDsPage]int32
}

const pagedIDsPage = 4096

func (p *pagedIDs) get(id uint32) int32 {
	if page := int(id / pagedIDsPage); page < len(p.pages) && p.pages[page] != nil {
		return p.pages[page][id%pagedIDsPage]
	}
	return 0
}

func (p *pagedIDs) set(id uint32, v int32) {
	page := int(id / pagedIDsPage)
	if page >= len(p.pages) {
		p.pages = append(p.pages, make([]*[pagedIDsPage]int32, page+1-len(p.pages))...)
	}
	if p.pages[page] == nil {
		p.pages[page] = new([pagedIDsPage]int32)
	}
	p.pages[page][id%pagedIDsPage] = v
}

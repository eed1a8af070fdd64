// early.js runs first, as a plain script in the page's head (the daemon
// inlines it: see data-inline in web/ui.go), and starts the flame graph's
// request before the page's modules have loaded: on a busy host that
// answer is most of the wait for the first view. api.js hands the answer
// to the first request for the same URL.
//
// It also holds the state an empty URL means, which main.js reads from
// here, so that both ask for the same URL.
"use strict";
(() => {
  const defaults = {
    from: "now-1h", to: "now", query: "", view: "flame", orient: "icicle", order: "weight", focus: "", search: "", regex: "",
    fn: "", group: "comm", by: "comm", xlabel: "", other: "0.1", ffocus: "", fignore: "", sbs: "", sort: "-self", tfilter: "", base_from: "", base_to: "", base_query: "", nodes: "16384",
    type: "",
  };
  const early = { defaults, prefetched: new Map(), used: [] };
  window.__emberEarly = early;
  try {
    // A link's "#token=..." first, as api.js's takeTokenFromFragment does.
    const m = location.hash.match(/(?:^#|&)token=([^&]+)/);
    if (m) {
      sessionStorage.setItem("ember-token", decodeURIComponent(m[1]));
      history.replaceState(history.state, "", location.pathname + location.search);
    }
    const q = new URLSearchParams(location.search), get = (k) => (q.has(k) ? q.get(k) : defaults[k]);
    // The parameters in the order main.js's load passes them to apiURL.
    const params = new URLSearchParams();
    const by = get("by") === "none" ? "" : get("by");
    for (const [k, v] of [["from", get("from")], ["to", get("to")], ["query", get("query")], ["max_nodes", get("nodes")], ["group_by", by], ["max_other", get("other")], ["type", get("type")]]) {
      if (v) params.set(k, v);
    }
    params.set("format", "binary"); // api.js's getFlameGraph adds it last
    const url = "api/v1/flamegraph?" + params;
    const token = sessionStorage.getItem("ember-token");
    const answer = fetch(url, { headers: token ? { Authorization: "Bearer " + token } : {} });
    answer.catch(() => {}); // whoever takes it sees the failure; nobody else should
    early.prefetched.set(url, answer);
  } catch { /* no early request: the page asks as usual */ }
})();

// The case browser: a table of every case in the report, filtered and sorted, its
// state in the URL fragment (a view can be linked), and one case in full below it.
// Everything a run holds is set as text (textContent), never as markup.
"use strict";
(function () {
  const ix = JSON.parse(document.getElementById("cases-index").textContent);
  const runs = ix.runs, params = ix.params, N = ix.id.length;
  const SHOWN = 200;
  const $ = (id) => document.getElementById(id);
  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  };
  const label = (i) => runs[ix.run[i]].label;
  const errorOf = (i) => ix.errors[ix.error[i]];
  const param = (i, p) => ix.values[i][params.indexOf(p)];
  // The table shows the parameters that vary; those fixed throughout are in each case.
  const shownParams = params.filter((p, k) => new Set(ix.values.map((v) => String(v[k]))).size > 1);

  // A case's details come in parts: inline (a <script type=application/json>), or a
  // side file beside the page (cases/part-NNNN.js) loaded when first needed.
  const parts = {};   // part number -> its records
  const loading = {}; // part number -> the promise of them, while a side file loads
  window.emulateCasePart = (n, records) => { parts[n] = records; };
  function part(n) {
    if (parts[n]) return Promise.resolve(parts[n]);
    const inline = document.getElementById("part-" + n);
    if (inline) {
      try {
        parts[n] = JSON.parse(inline.textContent);
      } catch (err) {
        return Promise.reject(err);
      }
      return Promise.resolve(parts[n]);
    }
    if (!loading[n]) {
      loading[n] = new Promise((resolve, reject) => {
        const s = document.createElement("script");
        s.src = "cases/part-" + String(n).padStart(4, "0") + ".js";
        const fail = (why) => {
          delete loading[n]; // a later try loads it again
          s.remove();
          reject(new Error(`${why} ${s.src} (keep the cases folder beside the page)`));
        };
        s.onload = () => (parts[n] ? (delete loading[n], resolve(parts[n])) : fail("no cases in"));
        s.onerror = () => fail("cannot load");
        document.head.appendChild(s);
      });
    }
    return loading[n];
  }
  const record = (i) => part(Math.floor(i / ix.part)).then((p) => p[i % ix.part]);
  const promptText = (p) => (typeof p === "string" ? p : p.map((m) => m.content).join("\n"));
  let haystack = null; // prompt and answer of every case, once a search needs them
  let haystackLoad = null;
  const loadHaystack = () => (haystackLoad = haystackLoad || readHaystack().catch((err) => {
    haystackLoad = null;
    throw err;
  }));
  async function readHaystack() {
    const texts = [];
    for (let n = 0; n * ix.part < N; n++) {
      const p = await part(n);
      for (const r of p) texts.push((promptText(r.prompt) + "\n" + (r.turns ? r.turns.join("\n") : r.answer || "")).toLowerCase());
    }
    haystack = texts;
  }

  function readState() {
    // #cases?run=...&correct=wrong&p.size=5&q=text&case=12: a view can be linked.
    const frag = location.hash;
    if (!frag.startsWith("#cases")) return {};
    return Object.fromEntries(new URLSearchParams(frag.slice(frag.indexOf("?") + 1)));
  }
  function writeState(s) {
    const kept = Object.entries(s).filter(([, v]) => v !== "" && v !== undefined && v !== null);
    history.replaceState(null, "", "#cases?" + new URLSearchParams(kept).toString());
  }

  let state = readState();

  function matches(i, paired, cellsOnly) {
    if (!paired && state.run && label(i) !== state.run) return false;
    if (state.probe && runs[ix.run[i]].probe !== state.probe) return false;
    for (let k = 0; k < params.length; k++) {
      const want = state["p." + params[k]];
      if (want !== undefined && want !== "" && String(ix.values[i][k]) !== want) return false;
    }
    if (cellsOnly) return true;
    if (state.correct === "right" && !ix.correct[i]) return false;
    if (state.correct === "wrong" && ix.correct[i]) return false;
    if (state.error && errorOf(i) !== state.error) return false;
    if (state.q && haystack && !haystack[i].includes(state.q.toLowerCase())) return false;
    return true;
  }

  function sortKey(i) {
    const k = state.sort;
    if (k === "run") return label(i);
    if (k === "correct") return ix.correct[i];
    if (k === "error") return errorOf(i);
    if (k === "reason") return ix.reason[i];
    if (k === "id") return ix.id[i];
    if (k && k.startsWith("p.")) return param(i, k.slice(2));
    return i;
  }

  function options(select, values, current) {
    select.replaceChildren(el("option", "all"));
    select.firstChild.value = "";
    for (const v of values) {
      const o = el("option", v);
      o.value = v;
      select.appendChild(o);
    }
    select.value = current || "";
  }

  function controls() {
    const box = $("case-filters");
    box.replaceChildren();
    const add = (name, node) => {
      const l = el("label", name + " ");
      l.appendChild(node);
      box.appendChild(l);
    };
    const uniq = (xs) => [...new Set(xs)].sort();
    const selects = {
      run: uniq(runs.map((r) => r.label)),
      probe: uniq(runs.map((r) => r.probe)),
      correct: ["right", "wrong"],
      error: uniq(ix.errors),
    };
    for (const [key, values] of Object.entries(selects)) {
      const s = el("select");
      s.id = "filter-" + key;
      options(s, values, state[key]);
      s.onchange = () => { state[key] = s.value; delete state.case; update(); };
      add(key === "run" ? "model" : key === "error" ? "error type" : key, s);
    }
    for (const p of shownParams) {
      const s = el("select");
      s.id = "filter-p-" + p;
      const k = params.indexOf(p);
      options(s, [...new Set(ix.values.map((v) => String(v[k])))].sort(natural), state["p." + p]);
      s.onchange = () => { state["p." + p] = s.value; delete state.case; update(); };
      add(p, s);
    }
    const labels = runs.map((r) => r.label);
    for (const [key, name, values] of [["a", "beside: A", labels], ["b", "B", labels],
        ["pair", "show", ["onlyA", "onlyB", "differ"]]]) {
      const s = el("select");
      s.id = "filter-" + key;
      options(s, values, state[key]);
      if (key === "pair") {
        const names = { onlyA: "right only in A", onlyB: "right only in B", differ: "answers differ" };
        for (const o of s.options) if (names[o.value]) o.textContent = names[o.value];
        s.firstChild.textContent = "every shared case";
      }
      s.onchange = () => { state[key] = s.value; delete state.case; update(); };
      add(name, s);
    }
    const q = el("input");
    q.id = "filter-q";
    q.type = "search";
    q.placeholder = "text in prompt or answer";
    q.value = state.q || "";
    q.oninput = () => { state.q = q.value; delete state.case; update(); };
    add("search", q);
  }

  function table(shown, total) {
    const head = ["run", "id", ...shownParams.map((p) => "p." + p), "correct", "error", "reason"];
    const names = pairMode()
      ? { run: "right in A · B", "id": "case", correct: "answers", error: "error types", reason: "reason (A)" }
      : { run: "model", "id": "case", correct: "correct", error: "error type", reason: "reason" };
    const t = el("table");
    const tr = el("tr");
    for (const h of head) {
      const th = el("th", names[h] || h.slice(2));
      th.className = "l sortable";
      th.onclick = () => {
        state.desc = state.sort === h && !state.desc ? "1" : "";
        state.sort = h;
        update();
      };
      if (state.sort === h) th.textContent += state.desc ? " ▼" : " ▲";
      tr.appendChild(th);
    }
    t.appendChild(tr);
    for (const i of shown) {
      const row = el("tr");
      row.className = "case-row" + (ix.correct[i] ? " right" : " wrong");
      row.dataset.index = String(i);
      const o = pairMode() ? partner(i) : undefined;
      const verdict = (k) => (ix.correct[k] ? "yes" : "no");
      const cells = o === undefined
        ? [label(i), ix.id[i], ...shownParams.map((p) => param(i, p)), verdict(i),
           ix.correct[i] ? "" : errorOf(i), ix.reason[i]]
        : [`A ${verdict(i)} · B ${verdict(o)}`, ix.id[i], ...shownParams.map((p) => param(i, p)),
           ix.said[i] === ix.said[o] ? "same answer" : "answers differ",
           [ix.correct[i] ? "" : "A " + errorOf(i), ix.correct[o] ? "" : "B " + errorOf(o)].filter(Boolean).join(", "),
           ix.reason[i]];
      for (const v of cells) row.appendChild(el("td", v === undefined || v === null ? "" : v, "l"));
      row.onclick = () => { state.case = String(i); update(); };
      t.appendChild(row);
    }
    const count = el("p", `${total} of ${N} cases` +
      (total > shown.length ? ` (the first ${shown.length} shown; filter or sort to see others)` : ""));
    count.id = "case-count";
    $("case-table").replaceChildren(count, t);
  }

  function pre(text, cls) {
    return el("pre", text, cls);
  }

  function isGrid(x) {
    return Array.isArray(x) && x.every((v) => typeof v === "number" || isGrid(v));
  }
  function truthValue(t) {
    if (t && typeof t === "object" && !Array.isArray(t)) {
      const keys = Object.keys(t);
      if (keys.length === 1) return t[keys[0]];
      if (typeof t.stdout === "string") return t.stdout;
      if ("value" in t) return t.value;
    }
    return t;
  }

  function gridDiff(parsed, truth) {
    // Rows of cells, the wrong ones marked; 1-D arrays are one row, deeper ones flattened per row.
    const rows = (a) => (Array.isArray(a[0]) ? a.map((r) => r.flat(Infinity)) : [a]);
    const p = rows(parsed), t = rows(truth);
    const table = el("table", undefined, "grid");
    let wrong = 0;
    for (let i = 0; i < Math.max(p.length, t.length); i++) {
      const tr = el("tr");
      const pr = p[i] || [], tru = t[i] || [];
      for (let j = 0; j < Math.max(pr.length, tru.length); j++) {
        const ok = pr[j] === tru[j];
        wrong += !ok;
        const td = el("td", pr[j] === undefined ? "·" : pr[j], ok ? "ok" : "bad");
        if (!ok) td.title = "truth: " + (tru[j] === undefined ? "none" : tru[j]);
        tr.appendChild(td);
      }
      table.appendChild(tr);
    }
    const box = el("div");
    box.append(el("p", `${wrong} cell(s) differ from the truth (marked; hover for the true value)`), table);
    return box;
  }

  function lineDiff(answer, truth) {
    // The longest common subsequence of lines: "-" truth only, "+" answer only.
    const a = truth.split("\n"), b = answer.split("\n");
    if (a.length * b.length > 4e6) return pre("(too long to diff line by line)");
    const n = a.length, m = b.length;
    const L = Array.from({ length: n + 1 }, () => new Int32Array(m + 1));
    for (let i = n - 1; i >= 0; i--)
      for (let j = m - 1; j >= 0; j--)
        L[i][j] = a[i] === b[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
    const out = el("pre", undefined, "diff");
    let i = 0, j = 0;
    const line = (prefix, text, cls) => out.appendChild(el("span", prefix + text + "\n", cls));
    while (i < n || j < m) {
      if (i < n && j < m && a[i] === b[j]) { line("  ", a[i], ""); i++; j++; }
      else if (j < m && (i === n || L[i][j + 1] >= L[i + 1][j])) { line("+ ", b[j], "add"); j++; }
      else { line("- ", a[i], "del"); i++; }
    }
    return out;
  }

  function tokenTable(tokens) {
    // The next token's alternatives as the model weighed them, each legal or not.
    const t = el("table", undefined, "tokens");
    const head = el("tr");
    for (const h of ["token", "probability", "if it came next"]) head.appendChild(el("th", h, "l"));
    t.appendChild(head);
    for (const a of tokens) {
      const tr = el("tr", undefined, a.kind === "legal" ? "legal" : "illegal");
      tr.append(el("td", JSON.stringify(a.token), "l"), el("td", a.p.toFixed(4)),
                el("td", a.kind.replace(/_/g, " "), "l"));
      t.appendChild(tr);
    }
    return t;
  }

  function turnDiff(said, truths, commands) {
    // A session turn by turn: each reply beside the true output, the first that
    // differs marked (later turns may follow from it).
    const box = el("div");
    let first = -1;
    truths.forEach((truth, k) => {
      const reply = (said[k] === undefined ? "(no reply)" : said[k]).replace(/\s+$/, "");
      const same = reply === String(truth).replace(/\s+$/, "");
      if (!same && first < 0) first = k;
      const head = el("p", `turn ${k + 1}` + (commands && commands[k] ? `: $ ${commands[k]}` : "") +
        (same ? " — right" : k === first ? " — the first divergence" : " — differs"),
        same ? "role right" : "role wrong");
      box.appendChild(head);
      if (!same) box.appendChild(lineDiff(reply, String(truth)));
    });
    box.prepend(el("p", first < 0 ? "every turn as the real terminal printed it"
      : `turns right before the first divergence: ${first}`, "note"));
    return box;
  }

  function rowsTable(model, truth) {
    // Each state's next-symbol row: the model's, the chain's, the counts in the
    // sequence shown (normalised), and the baby GPT's.
    const norm = (r) => { const s = r.reduce((a, b) => a + b, 0); return s ? r.map((x) => x / s) : r; };
    const fmt = (r) => (r ? r.map((x) => x.toFixed(2)).join(" ") : "(none)");
    const t = el("table", undefined, "rows");
    const head = el("tr");
    for (const h of ["state", "model", "chain", "counts", "baby GPT"]) head.appendChild(el("th", h, "l"));
    t.appendChild(head);
    for (const s of Object.keys(truth.chain)) {
      const tr = el("tr");
      tr.append(el("td", s, "l"), el("td", fmt(model[s]), "l"), el("td", fmt(truth.chain[s]), "l"),
                el("td", fmt(truth.counts && truth.counts[s] ? norm(truth.counts[s]) : null), "l"),
                el("td", fmt(truth.baby_gpt && truth.baby_gpt[s]), "l"));
      t.appendChild(tr);
    }
    return t;
  }

  function diffOf(c) {
    const truth = truthValue(c.truth);
    if (c.explain && Array.isArray(c.explain.tokens)) return tokenTable(c.explain.tokens);
    if (c.truth && Array.isArray(c.truth.outputs) && c.turns)
      return turnDiff(c.turns, c.truth.outputs, c.inputs && c.inputs.commands);
    if (c.truth && c.truth.chain && c.parsed && typeof c.parsed === "object" && !Array.isArray(c.parsed))
      return rowsTable(c.parsed, c.truth);
    if (isGrid(c.parsed) && isGrid(truth)) return gridDiff(c.parsed, truth);
    const truthText = typeof truth === "string" ? truth : JSON.stringify(truth, null, 1);
    const said = c.turns ? c.turns.join("\n") : c.answer || "";
    return lineDiff(said, truthText);
  }

  function view(i) {
    const box = $("case-view");
    if (i === undefined || !(i >= 0 && i < N)) { box.replaceChildren(); return; }
    const other = pairMode() ? partner(i) : undefined;
    const shown = other === undefined ? [i] : [i, other];
    const mine = ++viewing; // a slower load of a case opened before must not win
    box.replaceChildren(el("p", "loading the case…", "note"));
    Promise.all(shown.map(record)).then((recs) => {
      if (mine !== viewing) return;
      box.replaceChildren();
      const row = el("div", undefined, shown.length > 1 ? "side" : "");
      shown.forEach((k, n) => {
        const col = el("div", undefined, "col");
        col.id = "case-view-" + "ab"[n];
        show(k, recs[n], col);
        row.appendChild(col);
      });
      box.appendChild(row);
    }).catch((err) => { if (mine === viewing) box.replaceChildren(el("p", String(err), "wrong")); });
  }
  let viewing = 0;

  function show(i, c, box) {
    const part = (title, node) => { box.appendChild(el("h3", title)); box.appendChild(node); };
    box.appendChild(el("h2", `case ${ix.id[i]} — ${label(i)}`));
    box.appendChild(el("p", params.map((p) => `${p}=${param(i, p)}`).join(" "), "note"));
    const verdict = ix.correct[i] ? "right" : `wrong: ${errorOf(i)}`;
    part("verdict", el("p", verdict + (c.reason ? ` — ${c.reason}` : ""), ix.correct[i] ? "right" : "wrong"));
    if (Array.isArray(c.prompt)) {
      const turns = el("div");
      for (const m of c.prompt) {
        turns.appendChild(el("p", m.role, "role"));
        turns.appendChild(pre(m.content));
      }
      part("prompt (chat turns, as sent)", turns);
    } else {
      // The instructions and worked examples folded; the question last, as sent.
      const blocks = c.prompt.split("\n\n");
      const doc = el("div");
      if (blocks.length > 2) {
        const fold = el("details");
        fold.appendChild(el("summary", `the ${blocks.length - 1} blocks before the question ` +
          "(instructions, worked examples)"));
        fold.appendChild(pre(blocks.slice(0, -1).join("\n\n")));
        doc.append(fold, pre(blocks[blocks.length - 1]));
      } else {
        doc.appendChild(pre(c.prompt));
      }
      part("prompt (completion text, as sent)", doc);
    }
    if (c.error) part("request error", pre(c.error));
    if (c.turns) {
      const turns = el("div");
      c.turns.forEach((t, k) => { turns.appendChild(el("p", `turn ${k + 1}`, "role")); turns.appendChild(pre(t)); });
      part("answer (each turn, raw)", turns);
    } else if (c.region && c.answer) {
      // The region the shared extraction read the value from, marked.
      const [a, b] = c.region;
      const p = pre(c.answer.slice(0, a));
      p.appendChild(el("mark", c.answer.slice(a, b)));
      p.appendChild(document.createTextNode(c.answer.slice(b)));
      part("answer (raw; marked: what was read)", p);
    } else {
      part("answer (raw)", pre(c.answer));
    }
    part("truth", pre(JSON.stringify(c.truth, null, 1)));
    part("parsed", pre(c.parsed === null || c.parsed === undefined ? "(nothing parsed)" : JSON.stringify(c.parsed)));
    part("answer against truth", diffOf(c));
    const foils = Object.keys(c.foils || {});
    if (foils.length) part("known wrong operations", pre(foils.map((k) => k + ": " + JSON.stringify(c.foils[k])).join("\n")));
    const m = el("table");
    for (const [k, v] of Object.entries(c.metrics)) {
      const tr = el("tr");
      tr.append(el("td", k, "l"), el("td", v === null ? "" : typeof v === "object" ? JSON.stringify(v) : v));
      m.appendChild(tr);
    }
    part("metrics", m);
  }

  function natural(a, b) {
    const x = Number(a), y = Number(b);
    return isNaN(x) || isNaN(y) ? (a < b ? -1 : a > b ? 1 : 0) : x - y;
  }

  // Model beside model: two runs that share case ids (a sweep, or two runs of one
  // grid), the same case side by side, and where they part: McNemar's discordant
  // pairs with their exact p-value.
  // A label may name a run of each probe (a model's conv run and its brackets run):
  // every run with the label is that side. Case ids already differ between probes.
  const runsOf = (lbl) => new Set(runs.map((r, k) => (r.label === lbl ? k : -1)).filter((k) => k >= 0));
  const pairMode = () => state.a && state.b && state.a !== state.b &&
    runsOf(state.a).size > 0 && runsOf(state.b).size > 0;
  let pairIndex = null, pairKey = "";
  function pairsOf() {
    const key = state.a + "\u0000" + state.b;
    if (pairIndex && pairKey === key) return pairIndex;
    const ra = runsOf(state.a), rb = runsOf(state.b), byId = new Map();
    for (let i = 0; i < N; i++) {
      const side = ra.has(ix.run[i]) ? 0 : rb.has(ix.run[i]) ? 1 : -1;
      if (side < 0) continue;
      const pair = byId.get(ix.id[i]) || [-1, -1];
      pair[side] = i;
      byId.set(ix.id[i], pair);
    }
    pairIndex = new Map([...byId.values()].filter((p) => p[0] >= 0 && p[1] >= 0).map((p) => [p[0], p[1]]));
    pairKey = key;
    return pairIndex;
  }
  const partner = (i) => pairsOf().get(i);
  function pairMatches(a, b) {
    if (state.pair === "onlyA") return ix.correct[a] && !ix.correct[b];
    if (state.pair === "onlyB") return !ix.correct[a] && ix.correct[b];
    if (state.pair === "differ") return ix.said[a] !== ix.said[b];
    return true;
  }
  function mcnemar(b, c) {
    // Exact two-sided: twice the smaller tail of Binomial(b + c, 1/2), at most 1.
    const n = b + c;
    if (n === 0) return 1;
    let logC = 0, tail = -Infinity;
    for (let k = 0; k <= Math.min(b, c); k++) {
      const term = logC - n * Math.LN2;
      tail = Math.max(tail, term) + Math.log1p(Math.exp(-Math.abs(tail - term)));
      logC += Math.log(n - k) - Math.log(k + 1);
    }
    return Math.min(1, 2 * Math.exp(tail));
  }
  function pairSummary(order) {
    let b = 0, c = 0, same = 0;
    for (const a of order) {
      const o = partner(a);
      b += ix.correct[a] && !ix.correct[o];
      c += !ix.correct[a] && ix.correct[o];
      same += ix.said[a] === ix.said[o];
    }
    const p = el("p", `${order.length} cases shared: right only in A ${b}, right only in B ${c} ` +
      `(McNemar's exact p = ${mcnemar(b, c).toPrecision(3)}); the same answer in ${same}`);
    p.id = "pair-summary";
    return p;
  }

  function update() {
    if (state.q && !haystack) {
      $("case-table").replaceChildren(el("p", "reading every case's prompt and answer for the search…", "note"));
      loadHaystack().then(update, (err) => $("case-table").replaceChildren(el("p", String(err), "wrong")));
      return;
    }
    const order = [];
    let summary = null;
    if (pairMode()) {
      // McNemar's counts over the shared cases of the chosen probe and cells, before
      // any filter on A's verdict or text (a filter on it would bias them).
      const cells = [], shown = [];
      for (const [a] of pairsOf()) {
        if (matches(a, true, true)) cells.push(a);
        if (matches(a, true) && pairMatches(a, partner(a))) shown.push(a);
      }
      summary = pairSummary(cells);
      order.push(...shown);
    } else {
      for (let i = 0; i < N; i++) if (matches(i)) order.push(i);
    }
    if (state.sort) {
      const dir = state.desc ? -1 : 1;
      order.sort((x, y) => {
        const a = sortKey(x), b = sortKey(y);
        return a === b ? x - y : (a > b ? dir : -dir);
      });
    }
    table(order.slice(0, SHOWN), order.length);
    if (summary) $("case-table").prepend(summary);
    view(state.case === undefined ? undefined : Number(state.case));
    writeState(state);
  }

  // Each plotted point links to its cases: placed over the picture, as a fraction
  // of its size (set here: the page's policy allows no inline styles).
  for (const a of document.querySelectorAll("a.pt")) {
    a.style.left = 100 * Number(a.dataset.x) + "%";
    a.style.top = 100 * Number(a.dataset.y) + "%";
  }

  window.addEventListener("hashchange", () => {
    state = readState();
    controls();
    update();
    $("cases").scrollIntoView(); // a link from a summary row or a plot point lands here
  });
  controls();
  update();
})();

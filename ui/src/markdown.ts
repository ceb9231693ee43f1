// Model replies as Markdown, parsed by a real CommonMark + GFM parser (mdast) and walked into
// DOM nodes that hold only text: nothing the model writes can become HTML (no tags, no
// attributes, no scripts). Raw HTML in a reply shows as the text it is. Links are shown with
// their address in the tooltip and open in the browser only when clicked (the window handles
// the click; the webview never navigates). Code blocks are highlighted by lowlight into spans.
import type { Nodes as HastNodes } from "hast";
import { common, createLowlight } from "lowlight";
import type { AlignType, Nodes, Parents } from "mdast";
import { fromMarkdown } from "mdast-util-from-markdown";
import { gfmFromMarkdown } from "mdast-util-gfm";
import { gfm } from "micromark-extension-gfm";

const lowlight = createLowlight(common);

/** Renders `markdown` into a fragment of safe DOM nodes. An unclosed code fence (a reply still
 * streaming) renders as code so far. */
export function renderMarkdown(markdown: string, doc: Document = document): DocumentFragment {
  const tree = fromMarkdown(markdown, { extensions: [gfm()], mdastExtensions: [gfmFromMarkdown()] });
  const out = doc.createDocumentFragment();
  appendChildren(out, tree, doc);
  return out;
}

function appendChildren(parent: Node, node: Parents, doc: Document) {
  for (const child of node.children) {
    const el = render(child as Nodes, doc);
    if (el) parent.appendChild(el);
  }
}

/** `tag` holding the rendered children of `node`. */
function element(tag: string, node: Parents, doc: Document): HTMLElement {
  const el = doc.createElement(tag);
  appendChildren(el, node, doc);
  return el;
}

function render(node: Nodes, doc: Document): Node | null {
  switch (node.type) {
    case "paragraph":
      return element("p", node, doc);
    case "heading":
      // Reply headings sit below the window's own.
      return element(`h${Math.min(node.depth + 2, 6)}`, node, doc);
    case "text":
      return textWithBreaks(node.value, doc);
    case "emphasis":
      return element("em", node, doc);
    case "strong":
      return element("strong", node, doc);
    case "delete":
      return element("del", node, doc);
    case "inlineCode": {
      const el = doc.createElement("code");
      el.textContent = node.value;
      return el;
    }
    case "break":
      return doc.createElement("br");
    case "thematicBreak":
      return doc.createElement("hr");
    case "blockquote":
      return element("blockquote", node, doc);
    case "list": {
      const el = element(node.ordered ? "ol" : "ul", node, doc);
      if (node.ordered && node.start != null && node.start !== 1) (el as HTMLOListElement).start = node.start;
      return el;
    }
    case "listItem": {
      const li = doc.createElement("li");
      if (typeof node.checked === "boolean") {
        const box = doc.createElement("input");
        box.type = "checkbox";
        box.checked = node.checked;
        box.disabled = true;
        li.appendChild(box);
      }
      // A tight list's paragraphs are just their text.
      for (const child of node.children) {
        if (child.type === "paragraph" && !node.spread) appendChildren(li, child, doc);
        else {
          const el = render(child, doc);
          if (el) li.appendChild(el);
        }
      }
      return li;
    }
    case "code":
      return codeBlock(node.value, node.lang ?? "", doc);
    case "table": {
      const table = doc.createElement("table");
      const [head, ...body] = node.children;
      if (head) {
        const thead = doc.createElement("thead");
        thead.appendChild(row(head, "th", node.align ?? [], doc));
        table.appendChild(thead);
      }
      const tbody = doc.createElement("tbody");
      for (const r of body) tbody.appendChild(row(r, "td", node.align ?? [], doc));
      table.appendChild(tbody);
      const box = doc.createElement("div");
      box.className = "table";
      box.appendChild(table);
      return box;
    }
    case "link": {
      const el = element("span", node, doc);
      el.className = "link";
      el.title = node.url;
      el.dataset.href = node.url;
      el.setAttribute("role", "link");
      el.tabIndex = 0;
      return el;
    }
    case "image":
    case "imageReference":
      // No image is loaded from a reply; its description stands in.
      return doc.createTextNode(node.alt ?? "");
    case "html":
      return textWithBreaks(node.value, doc);
    case "footnoteReference": {
      const el = doc.createElement("sup");
      el.textContent = `[${node.label ?? node.identifier}]`;
      return el;
    }
    case "footnoteDefinition": {
      const el = element("div", node, doc);
      el.className = "footnote";
      el.prepend(doc.createTextNode(`[${node.label ?? node.identifier}] `));
      return el;
    }
    case "linkReference":
      return element("span", node, doc);
    default:
      // Definitions, front matter and anything else a reply has no use for show nothing.
      return null;
  }
}

function row(r: Parents, cell: "th" | "td", align: AlignType[], doc: Document): HTMLElement {
  const tr = doc.createElement("tr");
  r.children.forEach((c, i) => {
    const el = element(cell, c as Parents, doc);
    if (align[i]) el.style.textAlign = align[i]!;
    tr.appendChild(el);
  });
  return tr;
}

/** Text with its line breaks kept. */
function textWithBreaks(text: string, doc: Document): DocumentFragment {
  const out = doc.createDocumentFragment();
  text.split("\n").forEach((part, k) => {
    if (k > 0) out.appendChild(doc.createElement("br"));
    if (part) out.appendChild(doc.createTextNode(part));
  });
  return out;
}

function codeBlock(code: string, language: string, doc: Document): HTMLElement {
  const box = doc.createElement("div");
  box.className = "code";
  const copy = doc.createElement("button");
  copy.type = "button";
  copy.className = "copy";
  copy.textContent = "Copy";
  copy.setAttribute("aria-label", "Copy the code");
  copy.addEventListener("click", async () => {
    await navigator.clipboard.writeText(code);
    copy.textContent = "Copied";
  });
  const pre = doc.createElement("pre");
  const el = doc.createElement("code");
  if (language) el.dataset.language = language;
  if (language && lowlight.registered(language)) {
    el.classList.add("hljs");
    for (const n of lowlight.highlight(language, code).children) el.appendChild(hastToDom(n, doc));
  } else {
    el.textContent = code;
  }
  pre.appendChild(el);
  box.append(copy, pre);
  return box;
}

/** lowlight's output (text and spans with classes) as DOM nodes. */
function hastToDom(node: HastNodes, doc: Document): Node {
  if (node.type === "text") return doc.createTextNode(node.value);
  if (node.type !== "element") return doc.createTextNode("");
  const span = doc.createElement("span");
  const classes = node.properties?.className;
  if (Array.isArray(classes)) span.className = classes.join(" ");
  for (const child of node.children) span.appendChild(hastToDom(child as HastNodes, doc));
  return span;
}

const THINK_OPEN = "<think>";
const THINK_CLOSE = "</think>";

/** A reply split into its reasoning block (`<think>…</think>`, as reasoning models write it; null
 * when there is none, unfinished while the model still reasons) and its answer. */
export function splitReasoning(text: string): { reasoning: string | null; answer: string } {
  const start = text.indexOf(THINK_OPEN);
  if (start < 0 || text.slice(0, start).trim() !== "") return { reasoning: null, answer: text };
  const body = text.slice(start + THINK_OPEN.length);
  const end = body.indexOf(THINK_CLOSE);
  if (end < 0) return { reasoning: body.trim(), answer: "" };
  return { reasoning: body.slice(0, end).trim(), answer: body.slice(end + THINK_CLOSE.length).replace(/^\s+/, "") };
}

/** Renders a reply: its reasoning, if any, folded away (open when `open`), then its answer as
 * Markdown. An empty reasoning block (thinking turned off) shows nothing. */
export function renderReply(text: string, open = false, doc: Document = document): DocumentFragment {
  const { reasoning, answer } = splitReasoning(text);
  const out = doc.createDocumentFragment();
  if (reasoning) {
    const details = doc.createElement("details");
    details.className = "reasoning";
    details.open = open;
    const summary = doc.createElement("summary");
    summary.textContent = "Reasoning";
    details.append(summary, renderMarkdown(reasoning, doc));
    out.appendChild(details);
  }
  out.appendChild(renderMarkdown(answer, doc));
  return out;
}

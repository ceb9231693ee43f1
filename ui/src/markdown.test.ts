// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import { renderMarkdown, renderReply, splitReasoning } from "./markdown";

function html(md: string): HTMLElement {
  const div = document.createElement("div");
  div.appendChild(renderMarkdown(md));
  return div;
}

describe("renderMarkdown", () => {
  it("never turns model text into HTML", () => {
    const div = html('<script>alert(1)</script> <img src=x onerror="alert(2)"> **<b>bold</b>**');
    expect(div.querySelector("script, img, b")).toBeNull();
    expect(div.textContent).toContain("<script>alert(1)</script>");
    expect(div.querySelector("strong")!.textContent).toBe("<b>bold</b>");
    expect(div.querySelectorAll("[onerror]").length).toBe(0);
  });

  it("renders paragraphs, headings, lists and inline marks", () => {
    const div = html("# Title\nSome *soft* and **strong** `code`.\n\n- one\n- two\n\n1. first\n2. second");
    expect(div.querySelector("h3")!.textContent).toBe("Title");
    expect(div.querySelector("em")!.textContent).toBe("soft");
    expect(div.querySelector("p code")!.textContent).toBe("code");
    expect([...div.querySelectorAll("ul li")].map((li) => li.textContent)).toEqual(["one", "two"]);
    expect([...div.querySelectorAll("ol li")].map((li) => li.textContent)).toEqual(["first", "second"]);
  });

  it("shows links as text with the address in the tooltip, never as navigation", () => {
    const div = html("See [the docs](javascript:alert`1`) now.");
    expect(div.querySelector("a")).toBeNull();
    const link = div.querySelector(".link") as HTMLElement;
    expect(link.textContent).toBe("the docs");
    expect(link.title).toBe("javascript:alert`1`");
  });

  it("keeps code blocks verbatim with a copy button, even while the fence is still open", () => {
    const done = html("Run:\n```rust\nfn main() { println!(\"<hi>\"); }\n```\nDone.");
    const code = done.querySelector(".code pre code") as HTMLElement;
    expect(code.textContent).toBe('fn main() { println!("<hi>"); }');
    expect(code.dataset.language).toBe("rust");
    expect(done.querySelector(".code button.copy")!.textContent).toBe("Copy");
    expect(done.querySelector("p:last-child")!.textContent).toBe("Done.");
    const streaming = html("```\nlet x = 1;\nlet y");
    expect(streaming.querySelector("pre code")!.textContent).toBe("let x = 1;\nlet y");
  });

  it("re-rendering a growing reply gives the same structure as rendering it whole", () => {
    const reply = "Paris is **the capital**.\n\n- It has `2` airports.";
    let shown = "";
    const div = document.createElement("div");
    for (const piece of reply.match(/.{1,4}/gs)!) {
      shown += piece;
      div.replaceChildren(renderMarkdown(shown));
    }
    expect(div.innerHTML).toBe(html(reply).innerHTML);
  });
});

describe("renderReply", () => {
  it("folds a reasoning block away and shows the answer", () => {
    const div = document.createElement("div");
    div.appendChild(renderReply("<think>\nThe user asks about **France**.\n</think>\n\nParis."));
    const details = div.querySelector("details.reasoning") as HTMLDetailsElement;
    expect(details.open).toBe(false);
    expect(details.querySelector("strong")!.textContent).toBe("France");
    expect(div.querySelector(":scope > p")!.textContent).toBe("Paris.");
  });

  it("shows reasoning still streaming, and nothing for an empty block or none", () => {
    expect(splitReasoning("<think>first, the")).toEqual({ reasoning: "first, the", answer: "" });
    expect(splitReasoning("<think>\n\n</think>\n\nParis.")).toEqual({ reasoning: "", answer: "Paris." });
    expect(splitReasoning("Use <think> tags.")).toEqual({ reasoning: null, answer: "Use <think> tags." });
    const div = document.createElement("div");
    div.appendChild(renderReply("<think></think>Paris.", true));
    expect(div.querySelector("details")).toBeNull();
  });
});

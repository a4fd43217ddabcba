// The demo page: polls /api/state and draws a Telegram-like chat and the sandbox's panels.
// Bot messages arrive already sanitised to Telegram's tag set by the server; every other value
// is put in the page as text (textContent), never as markup.
"use strict";

const POLL_MS = 700;
const STATUS = {
  queued: "na fila",
  accepted: "aceita",
  sending: "enviando",
  sent: "enviada",
  delivered: "entregue",
  read: "lida",
  undelivered: "não entregue",
  failed: "falhou",
};

const $ = (id) => document.getElementById(id);
let lastState = null;
const drawn = new Map(); // message id -> signature of what is drawn
const seenAnswers = new Set();
const pendingTaps = new Map(); // query id -> button element
let firstDraw = true;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `erro ${response.status}`);
  return data;
}

// -- toasts and alerts --------------------------------------------------------------------------
let toastTimer = null;
function toast(text) {
  const node = $("toast");
  node.textContent = text;
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { node.hidden = true; }, 2600);
}

function alertBox(text) {
  $("alert-text").textContent = text;
  $("alert").hidden = false;
  $("alert-ok").focus();
}

// -- the chat -------------------------------------------------------------------------------------
function keyboard(message) {
  if (!message.buttons.length) return null;
  const box = el("div", { class: "keyboard" });
  for (const row of message.buttons) {
    const line = el("div", { class: "kb-row" });
    for (const b of row) {
      if (b.url !== undefined) {
        line.append(el("a", {
          class: "kb url", href: b.url, target: "_blank", rel: "noopener noreferrer",
          text: b.text,
        }, el("span", { class: "arrow", "aria-hidden": "true", text: "↗" })));
      } else {
        const button = el("button", { type: "button", class: "kb", text: b.text });
        button.addEventListener("click", () => tap(message.id, b.data, button));
        line.append(button);
      }
    }
    box.append(line);
  }
  return box;
}

function bubble(message) {
  const body = el("div", { class: "text" });
  if (message.from_bot) {
    body.innerHTML = message.html; // sanitised server-side to Telegram's tag set
  } else {
    body.textContent = message.text;
  }
  const meta = el("span", { class: "meta" },
    message.edited ? el("span", { class: "edited", text: "editada " }) : null,
    message.time,
    message.from_bot ? null : el("span", { class: "ticks", "aria-hidden": "true", text: " ✓✓" }));
  const wrap = el("div", {
    class: `msg ${message.from_bot ? "bot" : "me"}`, "data-id": String(message.id),
  }, el("div", { class: "bubble" }, body, meta));
  const kb = message.from_bot ? keyboard(message) : null;
  if (kb) wrap.append(kb);
  return wrap;
}

function drawChat(messages) {
  const chat = $("chat");
  const nearBottom = chat.scrollHeight - chat.scrollTop - chat.clientHeight < 120;
  let changed = false;
  let mine = false;
  for (const message of messages) {
    const signature = JSON.stringify(message);
    const old = chat.querySelector(`.msg[data-id="${message.id}"]`);
    if (old && drawn.get(message.id) === signature) continue;
    const node = bubble(message);
    if (old) {
      old.replaceWith(node);
      if (!firstDraw) node.classList.add("changed");
    } else {
      chat.append(node);
      mine = mine || !message.from_bot;
    }
    changed = true;
    drawn.set(message.id, signature);
  }
  // Like Telegram: follow new messages unless the reader scrolled up; always after sending.
  if (firstDraw || mine || (changed && nearBottom)) chat.scrollTop = chat.scrollHeight;
  firstDraw = false;
}

async function tap(messageId, data, button) {
  button.classList.add("busy");
  try {
    const { query_id: queryId } = await api("/api/tap", { message_id: messageId, data });
    pendingTaps.set(queryId, button);
    setTimeout(() => { button.classList.remove("busy"); pendingTaps.delete(queryId); }, 6000);
    poll();
  } catch (error) {
    button.classList.remove("busy");
    toast(error.message);
  }
}

function drawAnswers(answers) {
  for (const answer of answers) {
    if (seenAnswers.has(answer.id)) continue;
    seenAnswers.add(answer.id);
    const button = pendingTaps.get(answer.id);
    if (button) {
      button.classList.remove("busy");
      pendingTaps.delete(answer.id);
    }
    if (firstDraw || !answer.text) continue;
    if (answer.alert) alertBox(answer.text);
    else toast(answer.text);
  }
}

function drawCommands(commands) {
  const box = $("commands");
  box.replaceChildren(...commands.map((c) => el("button", {
    type: "button", class: "command",
    onclick: () => { box.hidden = true; $("menu-button").setAttribute("aria-expanded", "false"); send(`/${c.command}`); },
  }, el("span", { class: "cmd", text: `/${c.command}` }), el("span", { class: "desc", text: c.description }))));
  $("menu-button").disabled = commands.length === 0;
}

async function send(text) {
  if (!text.trim()) return;
  try {
    await api("/api/send", { text });
    poll();
  } catch (error) {
    toast(error.message);
  }
}

// -- the side panels -------------------------------------------------------------------------------
function setNumber(id, value) {
  const node = $(id);
  const text = String(value);
  if (node.textContent !== text) {
    if (node.textContent !== "–") {
      node.parentElement.classList.remove("flash");
      void node.parentElement.offsetWidth; // restart the animation
      node.parentElement.classList.add("flash");
    }
    node.textContent = text;
  }
}

function drawEnvelopes(envelopes) {
  const box = $("envelopes");
  if (!envelopes.length) {
    box.replaceChildren(el("p", { class: "empty", text: "Nenhum envelope pendente." }));
    return;
  }
  box.replaceChildren(...envelopes.map((env) => {
    const signers = env.signers.map((s) => {
      let action;
      if (s.signed) action = el("span", { class: "chip ok", text: "assinou" });
      else if (env.expired) action = el("span", { class: "chip bad", text: "expirado" });
      else if (!s.in_turn) action = el("span", { class: "chip", text: "aguardando a vez" });
      else {
        action = el("button", {
          type: "button", class: "btn small", text: "Simular assinatura",
          "data-sign": `${env.ref}|${s.email}`,
        });
        action.addEventListener("click", async () => {
          action.disabled = true;
          try {
            await api("/api/sign", { ref: env.ref, email: s.email });
            toast(`${s.name} assinou “${env.title}”.`);
            poll();
          } catch (error) {
            action.disabled = false;
            toast(error.message);
          }
        });
      }
      return el("li", { class: "signer" },
        el("div", {},
          el("div", { class: "signer-name", text: s.name }),
          el("div", { class: "muted small", text: s.phone ? `${s.email} · ${s.phone}` : `${s.email} · sem telefone` })),
        action);
    });
    return el("div", { class: `envelope${env.expired ? " expired" : ""}` },
      el("div", { class: "env-title" }, el("b", { text: env.title }), " ",
        el("span", { class: "muted small", text: env.ref })),
      el("ul", { class: "signers" }, ...signers));
  }));
}

function drawTexts(texts) {
  $("texts-count").textContent = String(texts.length);
  const box = $("texts");
  if (!texts.length) {
    box.replaceChildren(el("p", { class: "empty", text: "Nenhuma mensagem paga ainda." }));
    return;
  }
  box.replaceChildren(...texts.map((m) => el("div", { class: `item text-msg ${m.status}`, "data-status": m.status },
    el("div", { class: "item-head" },
      el("span", { class: `badge ${m.channel}`, text: m.channel === "sms" ? "SMS" : "WhatsApp" }),
      el("b", { text: m.to }),
      el("span", { class: `chip status ${m.status}`, text: STATUS[m.status] || m.status }),
      el("span", { class: "muted small right", text: m.time })),
    el("div", { class: "item-body", text: m.body }),
    m.error_code ? el("div", { class: "small bad-text", text: `erro ${m.error_code} da operadora` }) : null,
    m.template ? el("div", { class: "muted small", text: "modelo aprovado do WhatsApp" }) : null)));
}

function drawEmails(emails) {
  $("emails-count").textContent = String(emails.length);
  const box = $("emails");
  if (!emails.length) {
    box.replaceChildren(el("p", { class: "empty", text: "Nenhum e-mail ainda." }));
    return;
  }
  box.replaceChildren(...emails.map((e) => el("details", { class: "item email" },
    el("summary", {},
      el("div", { class: "item-head" },
        el("span", { class: "badge mail", text: "E-mail" }),
        el("b", { text: e.to }),
        el("span", { class: "muted small right", text: e.time })),
      el("div", { class: "subject", text: e.subject })),
    el("pre", { class: "email-text", text: e.text }))));
}

function drawOnce(key, value, fn) {
  const signature = JSON.stringify(value);
  if (lastState && JSON.stringify(lastState[key]) === signature) return;
  fn(value);
}

function draw(state) {
  $("account-name").textContent = state.account.name;
  $("account-plan").textContent = state.account.plan;
  $("bot-name").textContent = state.bot.name;
  $("bot-username").textContent = `@${state.bot.username}`;
  $("user-name").textContent = state.user.first_name;
  setNumber("balance-credits", state.balances.credits);
  setNumber("balance-notif", state.balances.notification_credits);
  $("clock-now").textContent = state.now_label;
  $("clock-offset").textContent = state.offset_label;
  const fail = $("fail-next");
  fail.classList.toggle("armed", state.fail_next);
  fail.textContent = state.fail_next ? "Próxima entrega paga vai falhar ✓" : "Fazer a próxima entrega paga falhar";
  drawOnce("commands", state.commands, drawCommands);
  drawOnce("envelopes", state.envelopes, drawEnvelopes);
  drawOnce("texts", state.texts, drawTexts);
  drawOnce("emails", state.emails, drawEmails);
  drawChat(state.chat);
  drawAnswers(state.answers);
  lastState = state;
}

let polling = false;
async function poll() {
  if (polling) return;
  polling = true;
  try {
    draw(await api("/api/state"));
    document.body.classList.remove("offline");
  } catch (error) {
    document.body.classList.add("offline");
  } finally {
    polling = false;
  }
}

function start() {
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("composer-input");
    const text = input.value;
    input.value = "";
    send(text);
  });
  $("menu-button").addEventListener("click", () => {
    const box = $("commands");
    box.hidden = !box.hidden;
    $("menu-button").setAttribute("aria-expanded", String(!box.hidden));
  });
  $("alert-ok").addEventListener("click", () => { $("alert").hidden = true; });
  for (const button of document.querySelectorAll("[data-advance]")) {
    button.addEventListener("click", async () => {
      try {
        await api("/api/clock", { seconds: Number(button.dataset.advance) });
        toast(`Relógio adiantado: ${button.textContent}`);
        poll();
      } catch (error) {
        toast(error.message);
      }
    });
  }
  $("fail-next").addEventListener("click", async () => {
    try {
      await api("/api/fail-next", {});
      toast("A próxima entrega paga vai falhar.");
      poll();
    } catch (error) {
      toast(error.message);
    }
  });
  poll();
  setInterval(poll, POLL_MS);
}

document.addEventListener("DOMContentLoaded", start);

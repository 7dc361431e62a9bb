// The examples/supabase page (realtime-js's ES modules, loaded through an import map) in headless Chromium: two
// pages in one room see each other online (presence) and each other's messages (broadcast with self and ack).
// Environment: SUPA_URL, SUPA_SECRET, CHROMIUM (default /usr/bin/chromium).
import assert from "node:assert/strict"
import {createHmac} from "node:crypto"
import {after, before, test} from "node:test"
import {chromium} from "playwright-core"

const base = process.env.SUPA_URL
const secret = process.env.SUPA_SECRET
const b64 = v => Buffer.from(JSON.stringify(v)).toString("base64url")
function jwt(claims){
  const head = b64({alg: "HS256", typ: "JWT"}), body = b64(claims)
  return `${head}.${body}.${createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url")}`
}

let browser
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true, timeout: 30000,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  })
})
after(async () => { if(browser){ await browser.close() } })

test("two realtime-js pages chat and see each other online", {timeout: 60000}, async t => {
  const room = `browser-${process.pid}`
  const pages = []
  for(const name of ["ann", "ben"]){
    const context = await browser.newContext()
    t.after(() => context.close())
    const page = await context.newPage()
    const errors = []
    page.on("pageerror", e => errors.push(e.message))
    const key = jwt({sub: name, role: "anon", exp: Math.floor(Date.now() / 1000) + 3600})
    await page.goto(`${base}/?key=${key}&room=${room}&name=${name}`)
    try {
      await page.waitForFunction(() => window.app && window.app.status.includes("SUBSCRIBED"), null, {timeout: 15000})
    } catch(e){
      throw new Error(`${name}: not SUBSCRIBED: ${e.message}; page errors: ${errors.join("; ")}`)
    }
    pages.push(page)
  }
  for(const page of pages){
    await page.waitForFunction(() => JSON.stringify(window.app.online) === '["ann","ben"]', null, {timeout: 10000})
  }
  assert.equal(await pages[0].evaluate(() => window.app.say("hello from ann")), "ok")
  for(const page of pages){
    await page.waitForFunction(() => window.app.messages.some(m => m.text === "hello from ann"), null, {timeout: 10000})
  }
})

// The phone field's formatter (verification/static/verification/phone_input.js) on the data the
// page fetches (phone_regions.json, generated from phonenumbers' metadata).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { fill, phoneFormat } from "../../verification/static/verification/phone_input.js";

const data = JSON.parse(
  readFileSync(new URL("../../verification/static/verification/phone_regions.json", import.meta.url)),
);
const parse = phoneFormat(data);
const text = (region, typed) => parse(region, typed).text;

test("fill writes digits into the slots and stops at the last one written", () => {
  assert.equal(fill("### ###-##-##", "9123"), "912 3");
  assert.equal(fill("(###) ###-####", "4"), "(4");
  assert.equal(fill("(###) ###-####", "4155"), "(415) 5");
  // A separator waits for the digit after it.
  assert.equal(fill("### ###-##-##", "912345"), "912 345");
});

test("fill uses optional slots while typing, then only as many as the number needs", () => {
  // phonenumbers' (\d{2})(\d{3,4})(\d{4}): the longest grouping until the number is complete.
  assert.equal(fill("## ###~ ####", "123456"), "12 3456");
  assert.equal(fill("## ###~ ####", "123456789"), "12 345 6789");
  assert.equal(fill("## ###~ ####", "1234567890"), "12 3456 7890");
});

test("a Russian number is formatted as it is typed", () => {
  const steps = ["9", "91", "912", "912 3", "912 34", "912 345", "912 345-6", "912 345-67",
    "912 345-67-8", "912 345-67-89"];
  const digits = "9123456789";
  steps.forEach((expected, index) => assert.equal(text("RU", digits.slice(0, index + 1)), expected));
  assert.deepEqual(parse("RU", "912 345-67-89"), {
    region: "RU", text: "912 345-67-89", e164: "+79123456789", national: "9123456789",
  });
});

test("a national prefix is written as at home and left out of the E.164 number", () => {
  assert.deepEqual(parse("RU", "89123456789"), {
    region: "RU", text: "8 (912) 345-67-89", e164: "+79123456789", national: "9123456789",
  });
  assert.equal(text("RU", "8912"), "8 (912");
  assert.equal(parse("GB", "07700900123").text, "07700 900123");
  assert.equal(parse("GB", "07700900123").e164, "+447700900123");
  assert.equal(parse("GB", "7700900123").e164, "+447700900123");
  assert.equal(parse("FR", "0612345678").text, "06 12 34 56 78");
  assert.equal(parse("US", "14155551234").text, "1 (415) 555-1234");
  assert.equal(parse("US", "14155551234").e164, "+14155551234");
});

test("a number that only has its usual length with the prefix's digit keeps it", () => {
  // Russia's toll-free 800 numbers: 8 is both the prefix and their first digit.
  assert.equal(parse("RU", "8001234567").e164, "+78001234567");
  assert.equal(parse("RU", "8001234567").text, "800 123-45-67");
  assert.equal(parse("RU", "88001234567").e164, "+78001234567");
  assert.equal(parse("RU", "88001234567").text, "8 (800) 123-45-67");
});

test("national numbers come out as phonenumbers formats them", () => {
  // phonenumbers' national format and E.164 for each (phonenumbers 9).
  const numbers = [
    ["DE", "015123456789", "01512 3456789", "+4915123456789"],
    ["UA", "0501234567", "050 123 4567", "+380501234567"],
    ["IN", "08123456789", "081234 56789", "+918123456789"],
    ["JP", "09012345678", "090-1234-5678", "+819012345678"],
    ["IT", "3123456789", "312 345 6789", "+393123456789"],
    ["CN", "13123456789", "131 2345 6789", "+8613123456789"],
    ["BY", "80291234567", "8 029 123-45-67", "+375291234567"],
  ];
  for (const [region, typed, formatted, e164] of numbers) {
    assert.deepEqual([text(region, typed), parse(region, typed).e164], [formatted, e164], region);
  }
});

test("+ and a calling code switch the country and format the rest", () => {
  assert.deepEqual(parse("US", "+79123456789"), {
    region: "RU", text: "+7 912 345-67-89", e164: "+79123456789", national: "9123456789",
  });
  assert.equal(parse("RU", "+44 7700 900123").region, "GB");
  assert.equal(parse("RU", "+44 7700 900123").text, "+44 7700 900123");
  // Regions sharing a code are told apart by their leading digits, else the picked one stays.
  assert.equal(parse("RU", "+7 771 000 9998").region, "KZ");
  assert.equal(parse("US", "+1 268 464 1234").region, "AG");
  assert.equal(parse("CA", "+1 416 555 1234").region, "CA");
  assert.equal(parse("KZ", "+7 912").region, "RU");
  // 00, the international prefix of most countries, is read as +.
  assert.deepEqual(parse("RU", "0044 7400 123456"), {
    region: "GB", text: "+44 7400 123456", e164: "+447400123456", national: "7400123456",
  });
  // Until a code is complete the country stays.
  assert.equal(parse("RU", "+").region, "RU");
  assert.equal(parse("RU", "+4").region, "RU");
  assert.equal(parse("", "+7912").region, "RU");
});

test("the sandbox's test numbers (code 999, unknown to phonenumbers) are kept as typed", () => {
  assert.deepEqual(parse("RU", "+999 66 2 1234"), {
    region: "", text: "+999 66 2 1234", e164: "+9996621234", national: "9996621234",
  });
  assert.equal(parse("", "+9996621234").e164, "+9996621234");
});

test("with no country picked, a number without + is sent as typed", () => {
  assert.deepEqual(parse("", " 912 345 "), {
    region: "", text: " 912 345 ", e164: "912 345", national: "912345",
  });
});

test("the data is compact and names every region's calling code and formats", () => {
  assert.ok(JSON.stringify(data).length < 60_000);
  assert.ok(Object.keys(data.regions).length > 240);
  const [code, prefix, lengths, example] = data.regions.RU;
  assert.deepEqual([code, prefix, lengths, example], [7, "8", [10], "9123456789"]);
  assert.equal(text("RU", example), "912 345-67-89");
});

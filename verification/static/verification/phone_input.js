// The phone field's country picker and formatting (data: verification/phone_regions.py).
const only = (text) => text.replace(/\D/g, "");
const plus = (text) => /^\s*\+/.test(text);
const starts = (pattern, digits) => new RegExp(`^(?:${pattern})`).exec(digits)?.[0];
const slots = (template, slot = /[#~]/g) => template.match(slot)?.length ?? 0;

// "~" slots take digits while "#" ones are left, then as needed.
export function fill(template, digits) {
  let spare = digits.length - slots(template, /#/g);
  const short = spare < 0;
  let [out, gap, used] = ["", "", 0];
  for (const char of template.replace(/~/g, () => (short || spare-- > 0 ? "#" : ""))) {
    if (!digits[used]) break;
    if (char === "#") (out += gap + digits[used++]), (gap = "");
    else gap += char;
  }
  return out;
}

export function phoneFormat({ regions }) {
  const main = {};
  for (const region in regions) main[regions[region][0]] ??= region;
  const show = (region, digits, prefixed) => {
    const [code, , lengths] = regions[region];
    const fits = (regions[main[code]][5] || []).filter(
      ([t, leading, rule]) =>
        slots(t) >= digits.length &&
        (!leading || starts(leading[digits.length - 3] ?? leading.at(-1), digits)) &&
        (!prefixed || rule),
    );
    let [t, , rule] = fits.find(([t]) => lengths.some((n) => n >= slots(t, /#/g) && n <= slots(t))) || fits[0] || [];
    if (!t || !digits[2]) return;
    if (prefixed) t = rule.includes("$") ? t.replace(/[#~]+/, (group) => rule.replace("$", group)) : rule + t;
    return fill(t, digits);
  };
  return (region, text) => {
    text = text.replace(/^(\s*)00/, "$1+");
    const digits = only(text);
    const e164 = `+${digits}`;
    if (plus(text)) {
      const code = [1, 2, 3].map((size) => digits.slice(0, size)).find((each) => main[each]);
      if (!code) return { region: digits[2] ? "" : region, text, e164, national: digits };
      const national = digits.slice(code.length);
      const same = Object.keys(regions).filter((each) => regions[each][0] == code);
      region =
        same.find((each) => starts(regions[each][4], national)) ||
        (same.includes(region) && !regions[region][4] ? region : main[code]);
      return { region, text: `+${code} ${show(region, national) || national}`.trim(), e164, national };
    }
    if (!regions[region]) return { region, text, e164: text.trim(), national: digits };
    const [code, prefix, lengths] = regions[region];
    const rest = digits.slice(prefix && starts(prefix, digits)?.length);
    // A national prefix, unless only with it is the length usual (RU 800...).
    const shown =
      rest !== digits &&
      (lengths.includes(rest.length) || !lengths.includes(digits.length)) &&
      (rest[2] ? show(region, rest, 1) : digits);
    const national = shown ? rest : digits;
    return { region, text: shown || show(region, digits) || digits, e164: national && `+${code}${national}`, national };
  };
}

export function phoneInput(input, select, { url, region, regions, lang = document.documentElement.lang }) {
  const hint = input.placeholder;
  let parse, data, last, before;
  const show = (text, chosen = select.value) => {
    const result = parse(chosen, text);
    select.value = result.region;
    if (select.selectedIndex < 0) select.value = "";
    last = select.value;
    before = input.value = result.text;
    input.placeholder = (last && parse(last, data[last][3]).text) || hint;
  };
  input.addEventListener("input", ({ inputType }) => {
    if (!parse) return;
    const typed = input.value;
    const text = typed.replace(/^(\s*)00/, "$1+");
    const digits = only(text);
    let caret = only(typed.slice(0, input.selectionStart)).length - (typed === text ? 0 : 2);
    // Deleting a space or a dash deletes the digit beside it.
    const at = inputType === "deleteContentForward" ? caret : caret - 1;
    const gone = /^delete/.test(inputType) && digits.length === only(before).length && at >= 0;
    show(gone ? (plus(text) ? "+" : "") + digits.slice(0, at) + digits.slice(at + 1) : text);
    if (gone) caret = at;
    if (input.value === typed) return;
    let position = +plus(text);
    for (let seen = 0; seen < caret && input.value[position]; ) seen += /\d/.test(input.value[position++]);
    input.setSelectionRange(position, position);
  });
  select.addEventListener("change", () => {
    const chosen = select.value;
    const { national, e164 } = parse(last, input.value);
    show(only(input.value) ? (chosen ? national : e164) : chosen ? "" : "+", chosen);
    select.value = last = chosen;
  });
  const ready = fetch(url)
    .then((response) => response.json())
    .then((loaded) => {
      data = loaded.regions;
      const names = new Intl.DisplayNames(lang, { type: "region" });
      const { compare } = new Intl.Collator(lang);
      const listed = (regions ? regions.split(" ") : Object.keys(data)).filter((each) => data[each]);
      listed
        .map((each) => [names.of(each), each])
        .sort(([a], [b]) => compare(a, b))
        .forEach(([name, each]) => select.add(new Option(`${name} +${data[each][0]}`, each)));
      // The first browser language that is the page's (en-GB: GB), else the page's (ru: RU).
      const page = new Intl.Locale(lang).language;
      const tag = navigator.languages.find((each) => new Intl.Locale(each).language === page);
      select.value = region || new Intl.Locale(tag || lang).maximize().region;
      if (select.selectedIndex < 0) select.value = regions ? listed[0] : "";
      parse = phoneFormat(loaded);
      show(input.value);
    });
  return {
    e164: () => (parse ? parse(select.value, input.value).e164 : input.value.trim()),
    set: (text) => (parse ? show(text) : (input.value = text)),
    ready,
  };
}

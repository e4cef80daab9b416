// Every string is translated on the server (the template's json_script block); this fills them in.

export const format = (template, params = {}) =>
  String(template).replace(/\{(\w+)\}/g, (match, name) => (name in params ? String(params[name]) : match));

export const translator = (strings) => (key, params) => format(strings[key] ?? key, params);

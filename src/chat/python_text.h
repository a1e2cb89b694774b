// How Python and Jinja print and test JSON-derived values (str(), repr(), str.strip(), truthiness,
// dictsort): the chat templates are Jinja code, so byte-identical rendering needs their semantics.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace ge::chat::py {

// Python's str(): strings verbatim, True/False/None, ints in decimal, floats as repr(), containers
// as repr(). Containers nested deeper than 256 levels print as [...] / {...} (callers bound depth).
std::string str(const nlohmann::json& value);
// Python's repr(). Non-printable non-ASCII code points are escaped for the C1 controls, the
// separators and format characters of common use, surrogates and private use; other code points
// (letters, CJK, emoji) are kept, as Python does. Unassigned code points are not detected.
std::string repr(const nlohmann::json& value);
// repr() of a float: shortest round-trip digits, fixed notation for 1e-4 <= |x| < 1e16.
std::string float_repr(double value);
// str.strip() with no argument: removes Unicode whitespace (str.isspace) at both ends. Bytes
// that are not valid UTF-8 count as non-whitespace.
std::string_view strip(std::string_view text);
bool is_space(char32_t cp);
// Python truthiness: null, false, 0, 0.0, "", [] and {} are false.
bool truthy(const nlohmann::json& value);
// str.upper() / str.lower() for ASCII, Latin-1, the modern Greek alphabet and basic Cyrillic
// (U+0400-U+045F), including 'ß' -> "SS"; other scripts are copied unchanged, and lower() does
// not apply Greek final sigma.
std::string upper(std::string_view text);
std::string lower(std::string_view text);

// Jinja's `mapping | dictsort`: items ordered by lower-cased key, ties in the object's own order.
using Item = std::pair<const std::string*, const nlohmann::json*>;
std::vector<Item> dictsort(const nlohmann::json& object);

// Jinja's `value['key']`: the member of an object, nullptr (Undefined) for anything else. This is
// what the sandbox returns for the keys the templates use, none of which name a Python attribute
// of str/list/int/bool/None.
const nlohmann::json* get_item(const nlohmann::json& value, std::string_view key);

// Appends the elements Jinja's `for x in value` yields, as str(): list items, object keys, the
// code points of a string. Returns false where Python raises (numbers, booleans, null).
bool iterate_as_strings(const nlohmann::json& value, std::vector<std::string>* out);

}  // namespace ge::chat::py

// Gemma 4 tool value syntax: serialisation details (dictsort order, Python number/None spelling)
// and parser errors.
#include "chat/tool_call_syntax.h"

#include <gtest/gtest.h>

namespace ge::chat {
namespace {

using nlohmann::json;

TEST(ToolCallSyntax, FormatsLikeTheTemplate) {
  const json args = json::parse(
      R"({"b": 1, "A": "x", "list": [true, null, 2.5, 1e-5, 1e16, 3.0], "o": {"k": "v"}})");
  EXPECT_EQ(format_tool_call_arguments(args),
            "A:<|\"|>x<|\"|>,b:1,list:[true,None,2.5,1e-05,1e+16,3.0],o:{k:<|\"|>v<|\"|>}");
  EXPECT_EQ(format_tool_value(json{{"k", "v"}}, /*escape_keys=*/true), "{<|\"|>k<|\"|>:<|\"|>v<|\"|>}");
  EXPECT_EQ(format_tool_call_arguments(json("raw text")), "raw text");
  EXPECT_EQ(format_tool_call_arguments(json(5)), "");
}

TEST(ToolCallSyntax, ParsesValues) {
  EXPECT_EQ(parse_tool_value(" <|\"|>a b<|\"|> ").value(), json("a b"));
  EXPECT_EQ(parse_tool_value("-12").value(), json(-12));
  EXPECT_EQ(parse_tool_value("18446744073709551615").value(), json(18446744073709551615ull));
  EXPECT_EQ(parse_tool_value("1e+16").value(), json(1e16));
  EXPECT_EQ(parse_tool_value("None").value(), json(nullptr));
  EXPECT_EQ(parse_tool_value("[ 1 , {a : 2} ]").value(), json::parse(R"([1, {"a": 2}])"));
  EXPECT_EQ(parse_tool_value("{<|\"|>quoted key<|\"|>:1}").value(), json::parse(R"({"quoted key": 1})"));
  EXPECT_EQ(parse_tool_call_arguments("{}").value(), json::object());
}

TEST(ToolCallSyntax, RejectsMalformedText) {
  for (const char* bad : {"", "{", "}", "{a}", "{a:}", "{:1}", "[1,]", "[1 2]", "01", "1.", ".5",
                          "+1", "1e", "tru", "Paris", "{a:1}x", "<|\"|>open", "{a:1,,b:2}",
                          "1e999", "-"}) {
    auto r = parse_tool_value(bad);
    EXPECT_FALSE(r.is_ok()) << bad;
    if (!r.is_ok()) {
      EXPECT_NE(r.status().message().find("parse tool call"), std::string::npos);
    }
  }
  EXPECT_FALSE(parse_tool_call_arguments("[1]").is_ok());
  std::string deep(200, '[');
  EXPECT_FALSE(parse_tool_value(deep).is_ok());
}

}  // namespace
}  // namespace ge::chat

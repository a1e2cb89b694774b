// Python str()/repr()/strip() semantics the chat templates rely on (values checked against
// CPython 3.11).
#include "chat/python_text.h"

#include <gtest/gtest.h>

namespace ge::chat::py {
namespace {

using nlohmann::json;

TEST(PythonText, FloatRepr) {
  EXPECT_EQ(float_repr(1e16), "1e+16");
  EXPECT_EQ(float_repr(1e15), "1000000000000000.0");
  EXPECT_EQ(float_repr(0.0001), "0.0001");
  EXPECT_EQ(float_repr(1e-5), "1e-05");
  EXPECT_EQ(float_repr(123456789012345678.0), "1.2345678901234568e+17");
  EXPECT_EQ(float_repr(-0.0), "-0.0");
  EXPECT_EQ(float_repr(2.5e-7), "2.5e-07");
  EXPECT_EQ(float_repr(1.5), "1.5");
  EXPECT_EQ(float_repr(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(float_repr(1e100), "1e+100");
  EXPECT_EQ(float_repr(100.0), "100.0");
  EXPECT_EQ(float_repr(6.02e23), "6.02e+23");
}

TEST(PythonText, StrAndRepr) {
  EXPECT_EQ(str(json(nullptr)), "None");
  EXPECT_EQ(str(json(true)), "True");
  EXPECT_EQ(str(json(-3)), "-3");
  EXPECT_EQ(str(json("plain")), "plain");
  EXPECT_EQ(str(json::parse(R"(["a", 1, null, {"k": false}])")), "['a', 1, None, {'k': False}]");
  EXPECT_EQ(repr(json("it's")), "\"it's\"");
  EXPECT_EQ(repr(json("both ' \"")), "'both \\' \"'");
  EXPECT_EQ(repr(json("\t\n\x01\u00e9\u00a0\u200b")), "'\\t\\n\\x01\u00e9\\xa0\\u200b'");
}

TEST(PythonText, StripUsesUnicodeWhitespace) {
  EXPECT_EQ(strip(" \t\u00a0\u3000\u2028\x1c\xc2\x85x y\u200a\n"), "x y");
  EXPECT_EQ(strip("\u200bx\u200b"), "\u200bx\u200b");  // zero-width space is not whitespace
  EXPECT_EQ(strip("\xff "), "\xff");                    // invalid UTF-8 is kept
  EXPECT_EQ(strip("   "), "");
}

TEST(PythonText, TruthyAndDictsort) {
  EXPECT_FALSE(truthy(json(0.0)));
  EXPECT_FALSE(truthy(json::array()));
  EXPECT_TRUE(truthy(json(" ")));
  EXPECT_FALSE(truthy(json("")));
  EXPECT_FALSE(truthy(json(nullptr)));
  EXPECT_TRUE(truthy(json(-0.5)));
  EXPECT_TRUE(truthy(json::object({{"a", nullptr}})));
  const json obj = json::parse(R"({"b": 1, "A": 2, "a_": 3, "C": 4})");
  std::string order;
  for (const auto& [k, v] : dictsort(obj)) order += *k + ",";
  EXPECT_EQ(order, "A,a_,b,C,");
}

}  // namespace
}  // namespace ge::chat::py

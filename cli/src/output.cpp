#include "sockmesh/cli/output.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/type_resolver.h>
#include <google/protobuf/util/type_resolver_util.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace sockmesh::cli {
namespace {

// Object members keep protobuf's order (field numbers), which is the order of the .proto.
using Tree = nlohmann::ordered_json;

// The message's wire form with map entries sorted by key. MessageToJsonString prints maps in the
// order of their hash table, which differs between two equal messages.
std::string deterministic_bytes(const google::protobuf::Message &message) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }  // the streams' destructors trim `bytes` to what was written
  return bytes;
}

Tree json_tree(const google::protobuf::Message &message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  // What MessageToJsonString does, from deterministic bytes.
  constexpr std::string_view kTypeUrlPrefix = "type.googleapis.com";
  const std::unique_ptr<google::protobuf::util::TypeResolver> resolver(
      google::protobuf::util::NewTypeResolverForDescriptorPool(
          std::string(kTypeUrlPrefix), message.GetDescriptor()->file()->pool()));
  std::string text;
  const auto status = google::protobuf::util::BinaryToJsonString(
      resolver.get(),
      std::string(kTypeUrlPrefix) + "/" + std::string(message.GetDescriptor()->full_name()),
      deterministic_bytes(message), &text, options);
  // Only messages with unknown Any types or invalid UTF-8 fail, and the agent's cannot contain
  // either.
  if (!status.ok())
    throw std::logic_error("cannot print " + message.GetTypeName() +
                           " as JSON: " + status.ToString());
  return Tree::parse(text);
}

// Plain scalars that YAML 1.1 or 1.2 may resolve to null, a bool or a number. Numbers are matched
// loosely (anything starting like one and made of number characters): quoting a string that did
// not need it changes nothing.
bool reads_as_non_string(std::string_view text) {
  static constexpr std::string_view kWords[] = {
      "",    "~",   "null", "Null", "NULL", "y",    "Y",     "yes",   "Yes",   "YES",  "n",   "N",
      "no",  "No",  "NO",   "true", "True", "TRUE", "false", "False", "FALSE", "on",   "On",  "ON",
      "off", "Off", "OFF",  ".inf", ".Inf", ".INF", "+.inf", "-.inf", ".nan",  ".NaN", ".NAN"};
  if (std::find(std::begin(kWords), std::end(kWords), text) != std::end(kWords)) return true;
  if (text.starts_with('+') || text.starts_with('-')) text.remove_prefix(1);
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  const bool starts_like_number =
      !text.empty() && (digit(text[0]) || (text[0] == '.' && text.size() > 1 && digit(text[1])));
  return starts_like_number &&
         text.find_first_not_of("0123456789_.:+-eEoxXabcdefABCDEF") == std::string_view::npos;
}

void emit(YAML::Emitter &out, const Tree &node) {
  switch (node.type()) {
    case Tree::value_t::object:
      if (node.empty()) out << YAML::Flow;
      out << YAML::BeginMap;
      for (const auto &[key, value] : node.items()) {
        out << YAML::Key << key << YAML::Value;
        emit(out, value);
      }
      out << YAML::EndMap;
      break;
    case Tree::value_t::array:
      if (node.empty()) out << YAML::Flow;
      out << YAML::BeginSeq;
      for (const auto &item : node) emit(out, item);
      out << YAML::EndSeq;
      break;
    case Tree::value_t::string: {
      const auto &text = node.get_ref<const std::string &>();
      if (reads_as_non_string(text)) out << YAML::DoubleQuoted;
      out << text;
      break;
    }
    default:
      // Numbers, bools and null: the JSON text is valid YAML with the same value.
      out << node.dump();
      break;
  }
}

}  // namespace

std::optional<OutputFormat> parse_output_format(std::string_view text) {
  if (text == "table") return OutputFormat::table;
  if (text == "json") return OutputFormat::json;
  if (text == "yaml") return OutputFormat::yaml;
  return std::nullopt;
}

std::string json_document(const google::protobuf::Message &message, DocumentLayout layout) {
  return json_tree(message).dump(layout == DocumentLayout::single ? 2 : -1) + '\n';
}

std::string yaml_document(const google::protobuf::Message &message, DocumentLayout layout) {
  YAML::Emitter out;
  emit(out, json_tree(message));
  return (layout == DocumentLayout::stream ? "---\n" : "") + std::string(out.c_str()) + '\n';
}

}  // namespace sockmesh::cli

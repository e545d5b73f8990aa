// Machine-readable output (-o json, -o yaml): the admin API's response messages in protobuf's JSON
// mapping, as a JSON document or the same tree in YAML.
#pragma once

#include <google/protobuf/message.h>

#include <optional>
#include <string>
#include <string_view>

namespace sockmesh::cli {

enum class OutputFormat { table, json, yaml };

// "table", "json", "yaml"; nullopt for anything else.
std::optional<OutputFormat> parse_output_format(std::string_view text);

// How a document is laid out: one per command, or one of many in a watch's stream.
enum class DocumentLayout {
  single,  // JSON indented by two spaces; YAML without a document marker
  stream,  // JSON on one line; YAML starting with "---"
};

// protobuf's JSON mapping with every field present (zero values and empty lists too),
// lowerCamelCase names, enums by name, 64-bit integers as strings. Ends with '\n'.
std::string json_document(const google::protobuf::Message &message, DocumentLayout layout);

// The tree of json_document in block-style YAML; strings that YAML would read as another type
// ("1200", "true") are double-quoted so that the types stay those of the JSON. Ends with '\n'.
std::string yaml_document(const google::protobuf::Message &message, DocumentLayout layout);

}  // namespace sockmesh::cli

// Resource -> map translation: the fuzzed bytes are a YAML config; when it loads (parsed and
// validated by resources::load_yaml_string, as meshd's reload does) it goes the agent's way to the
// kernel's maps: reconcile::translate, to_slot_image for every VIP (backend sets, cumulative
// weights, Maglev tables), the resilience state keys, the mesh view, and the same-node
// authorization compiled for every workload (compile_policy).
//
// Beyond "no crash": a resource set that validates must translate and fit the kernel without
// throwing (a throw here is a config the agent accepts and then fails to install); every backend
// has its VIP's family; a Maglev table names only existing backends; the policy compile throws
// nothing but its documented std::length_error (over the map's bounds).
#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "reconcile/lb_maps.h"
#include "reconcile/mesh_view.h"
#include "reconcile/policy_maps.h"
#include "reconcile/resilience_states.h"
#include "reconcile/translate.h"
#include "sockmesh/policy/authorize.h"
#include "sockmesh/resources/load.h"
#include "sockmesh/resources/resource_set.h"

namespace r = sockmesh::resources;
namespace rc = sockmesh::reconcile;
namespace policy = sockmesh::policy;

namespace {

void translate_all(const sockmesh::v1::Snapshot &snapshot) {
  const rc::DesiredState desired = rc::translate(snapshot);
  for (const auto &[key, service] : desired) {
    for (const auto &b : service.backends)
      FUZZ_CHECK(b.addr.family == key.addr.family, rc::format_key(key) + " " + b.workload);
    const rc::SlotImage image = rc::to_slot_image(service);
    FUZZ_CHECK(image.set.count == service.backends.size(), rc::format_key(key));
    for (uint8_t owner : image.maglev)
      FUZZ_CHECK(owner < image.set.count || image.set.total_weight == 0, rc::format_key(key));
    rc::StateRefs refs;
    refs.add(image);
    (void)rc::state_keys_of(image);
    refs.remove(image);
  }
}

void compile_authorization(const sockmesh::v1::Snapshot &snapshot) {
  const auto view = rc::mesh_view_of(r::to_resources(snapshot));
  const auto index = policy::PolicyIndex::build(snapshot.authorization_policies());
  std::vector<rc::PolicyWorkload> local;
  uint32_t number = 0;
  for (const auto &w : snapshot.workloads()) {
    const std::string sa = w.service_account().empty() ? "default" : w.service_account();
    local.push_back(
        {++number,
         policy::Source::workload(policy::kDefaultTrustDomain, w.metadata().namespace_(), sa),
         policy::Destination::of(w)});
  }
  try {
    const rc::CompiledPolicy compiled = rc::compile_policy(index, local);
    FUZZ_CHECK(!compiled.rules.empty(), "no default deny rule");
  } catch (const std::length_error &) {
    // Over the kernel map's bounds: refused whole, documented.
  }
  (void)view;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  const r::LoadResult loaded = r::load_yaml_string(text, "fuzz.yaml");
  if (!loaded.ok()) return 0;
  try {
    translate_all(loaded.snapshot);
    compile_authorization(loaded.snapshot);
  } catch (const std::exception &e) {
    sockmesh::fuzz::fail(__FILE__, __LINE__, "validated config translates",
                         std::string("a validated config throws: ") + e.what());
  }
  return 0;
}

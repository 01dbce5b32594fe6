// Registers pair_style mdmlkit with LAMMPS ("plugin load mdmlkit_plugin.so").
#include "lammps.h"
#include "pair_mdmlkit.h"

using namespace LAMMPS_NS;

// The LAMMPS plugin interface (ABI of src/lammpsplugin.h, which the PyPI wheel does not ship).
extern "C" {
typedef void *(mdmlkit_factory1)(void *);
typedef void *(mdmlkit_factory2)(void *, int, char **);
typedef struct {
  const char *version;
  const char *style;
  const char *name;
  const char *info;
  const char *author;
  union {
    mdmlkit_factory1 *v1;
    mdmlkit_factory2 *v2;
  } creator;
  void *handle;
} mdmlkit_lammpsplugin_t;
typedef void (*mdmlkit_regfunc)(mdmlkit_lammpsplugin_t *, void *);
void lammpsplugin_init(void *lmp, void *handle, void *regfunc);
}

static Pair *mdmlkit_creator(LAMMPS *lmp)
{
  return new PairMdmlkit(lmp);
}

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  mdmlkit_lammpsplugin_t plugin;
  auto reg = (mdmlkit_regfunc) regfunc;
  plugin.version = ((LAMMPS *) lmp)->version;    // built against this installation's headers
  plugin.style = "pair";
  plugin.name = "mdmlkit";
  plugin.info = "mdmlkit HDNNP (n2p2-format model directory) pair style";
  plugin.author = "mdmlkit";
  plugin.creator.v1 = (mdmlkit_factory1 *) &mdmlkit_creator;
  plugin.handle = handle;
  (*reg)(&plugin, lmp);
}

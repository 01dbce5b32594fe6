// mdmlkit HDNNP model for the LAMMPS plugin: reads an n2p2-format model directory
// (input.nn, scaling.data, weights.ZZZ.data) and evaluates atomic energies and their
// gradients with respect to the neighbour vectors.  Independent of LAMMPS (errors are
// thrown as mdmlkit_lmp::ModelError carrying "file, line N: message").
//
// Units: Å and eV (the model files' units; n2p2 normalisation with conv_length != 1 is
// refused).  Written for mdmlkit; the maths follows mdmlkit.descriptors (see
// docs/lammps.md).
#ifndef MDMLKIT_LMP_HDNNP_MODEL_H
#define MDMLKIT_LMP_HDNNP_MODEL_H

#include <array>
#include <stdexcept>
#include <string>
#include <vector>

namespace mdmlkit_lmp {

class ModelError : public std::runtime_error {
 public:
  explicit ModelError(const std::string &msg) : std::runtime_error(msg) {}
};

struct RadialFn {          // type 2: G = sum_j exp(-eta (r - rs)^2) fc(r)
  int index;               // column in the element's (n2p2-sorted) feature vector
  int e1;                  // neighbour element (model element index)
  double eta, rs, rc;
  int rc_index;            // into Element::rcs
  int tab_col = -1;        // column of the element's radial tables (-1: evaluated exactly)
};

struct AngularFn {         // types 3 and 9
  int index, type, e1, e2; // e1 <= e2 by atomic number
  double eta, rs, rc, lambda, zeta;
  int rc_index;
  bool moment;             // evaluated through Cartesian moments (type 9, integer zeta)
  int group;               // moment group (radial factor u, element pair) or -1
  double pref;             // 2^(1 - zeta)
  int zint = -1;           // zeta - 1 when zeta is an integer in 1..64 (powers by products), else -1
  std::vector<double> coef;  // moment form: G = sum_n coef[n] Q_n + diag D
  double diag = 0.0;
};

struct MomentGroup {       // functions sharing a radial factor u = (eta, rs, rc) and a pair
  int u;                   // into Element::mom_u
  int e1, e2;              // model element indices (e1 == e2: same-element pair)
  int nmax;                // largest zeta of the group
  std::vector<int> fns;    // into Element::angular
};

struct MomentRadial { double eta, rs, rc; int rc_index; int tab_col = -1; };

// K radial factors R_k(r) = exp(-eta_k (r - rs_k)^2) fc(r) with one cutoff rc as piecewise
// quintic polynomials on a uniform grid of [0, rc] that match value, slope and curvature at
// every node (as mdmlkit.descriptors.kernels.fused.tabulate_radial): one interval lookup per
// neighbour gives all K values and slopes.
struct RadialTable {
  double rc = 0.0, h = 0.0, invh = 0.0;
  int n_int = 0, K = 0;
  int col = 0;                   // first column in the element's per-neighbour table arrays
  std::vector<double> coef;      // [n_int][K][6], in t = r / h - interval
};

struct Layer {
  int n_in, n_out;
  std::vector<double> w;   // [n_out][n_in]
  std::vector<double> b;   // [n_out]
  char act;                // n2p2 activation letter
};

struct Element {
  std::string symbol;
  int z;
  int n_features = 0;
  std::vector<RadialFn> radial;
  std::vector<std::vector<int>> radial_by_el;   // neighbour element -> indices into radial
  std::vector<int> triplet_fns;                 // angular functions without a moment form
  // explicit triplets: the distinct radial factors (eta, rs, rc) of the triplet functions,
  // each function's factor (per entry of triplet_fns), the functions of each neighbour
  // element pair ([ej * n_elements + ek], positions in triplet_fns) and their largest rc
  std::vector<std::array<double, 3>> trip_fac;
  std::vector<int> trip_fac_of;
  std::vector<int> trip_tab_col;                // per triplet factor: its table column (-1: exact)
  std::vector<std::vector<int>> trip_pair;
  std::vector<char> trip_pair_r3;               // [ej * n_elements + ek]: only type 3 (r_jk < rc)
  double trip_rc = 0.0;
  std::vector<AngularFn> angular;
  std::vector<double> rcs;                 // distinct cutoffs of this element's functions
  double rc_max = 0.0;
  std::vector<MomentRadial> mom_u;
  std::vector<MomentGroup> groups;
  int mom_nmax = 0;                        // highest monomial degree needed
  std::vector<RadialTable> tables;         // radial factors of `radial`, `mom_u`, `trip_fac` (tabulated)
  int n_tab_cols = 0;
  std::vector<int> tab_of_col;             // table of each column
  // scaling: x = offset + factor * (G - shift); Gmin/Gmax for the extrapolation check
  std::vector<double> shift, factor, gmin, gmax;
  double offset = 0.0;
  std::vector<Layer> layers;
  double e0 = 0.0;                         // atom_energy + mean_energy, eV
  std::vector<std::string> lines;          // symfunction_short text per feature (sorted order)
};

struct Neighbour {
  double d[3];   // x_j - x_i, Å
  double r;      // |d|, Å
  int el;        // model element index of j
};

// Scratch space reused between atoms (one per pair style instance).
struct Workspace {
  std::vector<double> G, x, dEdG;
  std::vector<std::vector<double>> act, dact;
  std::vector<double> rad_dR;       // per neighbour x radial function: dR/dr
  std::vector<double> tv, td;       // per neighbour x table column: R and dR/dr (tabulated)
  std::vector<double> tR, tdR;      // per neighbour x triplet factor: R(r_ij), dR/dr
  std::vector<int> tj, tk;          // per listed triplet: the two neighbours (j < k)
  std::vector<double> tRjk, tdRjk;  // per listed triplet x triplet factor: R(r_jk), dR/dr
  std::vector<double> fc, dfc;      // per neighbour x rc
  std::vector<double> Tr, T, D, Q, dT, dD, dQ, B, mono, uR, udR;
  std::vector<double> grad;         // per neighbour: dE/d(d), 3 each
};

class Model {
 public:
  // Reads <dir>/input.nn, <dir>/scaling.data and <dir>/weights.ZZZ.data.  With `tabulate`
  // the radial factors of the radial and moment functions come from quintic tables (error
  // < 1e-8 of values and of slopes x 1 Å, as mdmlkit's fused kernels); otherwise, or when
  // a table cannot reach that error, they are evaluated exactly.
  explicit Model(const std::string &dir, bool force_triplets = false, bool tabulate = true);

  int n_elements() const { return (int)elements.size(); }
  const Element &element(int k) const { return elements[k]; }
  int element_index(const std::string &symbol) const;   // -1 if absent
  double cutoff() const { return rc_max; }
  std::string element_list() const;
  const std::string &directory() const { return dir_; }
  bool tabulated() const { return tabulated_; }
  double table_error() const { return table_error_; }   // largest error of the tables

  // Energy (eV) of one atom of element `el` with neighbours `nb` (any within the
  // model cutoff; farther ones contribute zero).  Fills ws.grad[3 k + a] = dE/d(nb[k].d[a])
  // (eV/Å) and returns the number of symmetry-function values outside
  // [Gmin - tol (Gmax - Gmin), Gmax + tol (Gmax - Gmin)] in *n_extrapolated.
  double energy(int el, const std::vector<Neighbour> &nb, Workspace &ws, double tolerance,
                int *n_extrapolated) const;

  // Raw symmetry functions of the last call (n2p2-sorted order).
  static const std::vector<double> &descriptors(const Workspace &ws) { return ws.G; }

 private:
  std::string dir_;
  std::vector<Element> elements;   // input.nn order
  double rc_max = 0.0;
  double energy_scale = 1.0;
  int cutoff_type_ = 6;
  double cutoff_alpha_ = 0.0;
  bool normalize_nodes_ = false;
  bool tabulated_ = false;
  double table_error_ = 0.0;
  void build_tables(double tol);
  // monomial tables up to the largest degree needed (Cartesian moments)
  int mono_nmax = -1;
  std::vector<int> mono_a, mono_b, mono_c, mono_n, mono_parent, mono_axis, mono_minus;
  std::vector<double> mono_w;
  std::vector<int> mono_start;     // first monomial of degree n

  void read_input_nn(const std::string &path, bool force_triplets);
  void read_scaling(const std::string &path, const std::string &mode, double smin, double smax);
  void read_weights(int el, const std::string &path);
  void build_monomials(int nmax);
  // reduced monomials x^a y^b z^c (c <= 1) and the map full <- reduced (see hdnnp_model.cpp)
  std::vector<int> red_minus, lmap_start, lmap_index;
  std::vector<double> red_pow, lmap_coef;
  static int red_size(int nmax) { return nmax < 0 ? 0 : (nmax + 1) * (nmax + 1); }
  static int red_index(int a, int b, int c);
  void build_reduced(int nmax);
  void fill_reduced(const double *u, int nmax, double *mono) const;
};

}    // namespace mdmlkit_lmp

#endif

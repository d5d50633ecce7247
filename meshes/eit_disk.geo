// Unit disk with L electrodes on its boundary, for EIT (physinv).
// The same geometry, tags and options as physinv.fem.gmsh_meshes.eit_disk_arrays.
//
//   gmsh -2 -setnumber lc 0.1 meshes/eit_disk.geo -o meshes/eit_disk_h0.1.msh
//
// Electrode k = 1..L is centred at angle 2 pi (k - 1) / L (electrode 1 at (1, 0),
// numbered counter-clockwise) and spans +- pi coverage / L around it.
// Physical curves: electrode_k (tag k), gaps (100); physical surface: domain (200).
DefineConstant[ lc = {0.1, Name "Parameters/lc"},
                L = {16, Name "Parameters/electrodes"},
                coverage = {0.5, Name "Parameters/coverage"} ];

half_width = Pi * coverage / L;
Point(1) = {0, 0, 0, lc};
For k In {0 : L - 1}
  theta = 2 * Pi * k / L;
  Point(2 + 2 * k) = {Cos(theta - half_width), Sin(theta - half_width), 0, lc};
  Point(3 + 2 * k) = {Cos(theta + half_width), Sin(theta + half_width), 0, lc};
EndFor
For k In {0 : L - 1}
  next_start = (k == L - 1) ? 2 : 4 + 2 * k;
  Circle(1 + 2 * k) = {2 + 2 * k, 1, 3 + 2 * k};     // electrode k + 1
  Circle(2 + 2 * k) = {3 + 2 * k, 1, next_start};    // gap after it
EndFor
Curve Loop(1) = {1 : 2 * L};
Plane Surface(1) = {1};

For k In {0 : L - 1}
  Physical Curve(Sprintf("electrode_%g", k + 1), k + 1) = {1 + 2 * k};
EndFor
Physical Curve("gaps", 100) = {2 : 2 * L : 2};
Physical Surface("domain", 200) = {1};

Mesh.Algorithm = 6;           // Frontal-Delaunay
Mesh.MeshSizeFromPoints = 1;
Mesh.MeshSizeExtendFromBoundary = 1;

"""Which ADE20K scene categories are outdoor scenes: the filter of the ade20k-outdoor plugin.

ADE20K-outdoor (SPADE, Park et al. 2019) is "the subset of ADE20K used by Qi et al. (SIMS, CVPR 2018) that
contains only outdoor scenes". ADEChallengeData2016 labels every image with one scene category in
`sceneCategories.txt` (`ADE_train_00000001 airport_terminal`), and an image belongs to the subset when its
category is in OUTDOOR_SCENES.
"""

from __future__ import annotations

# How this list was chosen: ADEChallengeData2016 names 1,055 distinct scene categories, SUN/Places-style
# (`street`, `bedroom`, `cathedral_outdoor`, `cathedral_indoor`, ...). Each name was read and kept when
# a photo of that scene is taken outdoors: natural landscapes and waters, farmland and gardens, roads and
# railways, building exteriors, towns, industrial sites, and open-air sports and leisure grounds. Left out:
# interiors (rooms, halls, shops, `*_indoor`, `*_interior`), vehicle interiors, `misc`, and names that
# are as often indoors as out (`airplane`, `boat`, `booth`, `platform`, `station`, `stable`, `nursery`,
# `shrine`, `landing`, `catwalk`, ...). A sub-category (SUN's `field/cultivated`) is written in the
# file as `field_cultivated`; public listings of the categories also give it by its last part
# (`cultivated`), so both spellings are kept. The 1,055 names were taken from a public listing of the
# file's categories, not from the file itself; a name that is not in the file costs nothing. Qi et al.
# did not spell out their selection, so the image counts may differ a little from the papers'.
# fmt: off
OUTDOOR_SCENES = (
    # natural landscapes, vegetation and weather
    "archipelago", "backwoods", "badlands", "bamboo_forest", "bog", "bottomland", "broadleaf", "butte",
    "canyon", "cavern_outdoor", "chaparral", "cliff", "crevasse", "desert_sand", "desert_vegetation",
    "earth_fissure", "escarpment", "field_wild", "flashflood", "flood", "flood_plain", "foothill",
    "forest_broadleaf", "forest_fire", "forest_needleleaf", "forest_path", "glacier", "glade", "glen",
    "gorge", "grotto", "grove", "gulch", "heath", "hill", "hillock", "hollow", "hoodoo", "ice_floe",
    "ice_shelf", "iceberg", "islet", "jungle", "lava_flow", "meadow", "mesa", "moor", "mountain",
    "mountain_path", "mountain_snowy", "needleleaf", "oasis", "outcropping", "preserve", "quicksand",
    "rainforest", "rift_valley", "rock_arch", "salt_plain", "sand", "savanna", "scrubland", "semidesert",
    "sinkhole", "sky", "snowbank", "snowfield", "tundra", "valley", "vegetation", "volcano", "wild",
    "windstorm", "woodland",
    # seas, lakes, rivers and shores
    "bay", "bayou", "beach", "brooklet", "canal_natural", "canal_urban", "cascade", "cataract", "coast",
    "coral_reef", "creek", "dam", "ditch", "drainage_ditch", "embankment", "estuary", "fishpond", "fjord",
    "foreshore", "hot_spring", "inlet", "irrigation_ditch", "lagoon", "lake_natural", "levee", "marsh",
    "millpond", "millrace", "moat_water", "mudflat", "natural", "natural_spring", "ocean", "ocean_deep",
    "ocean_shallow", "pond", "river", "sandbar", "sea_cliff", "seaside", "seawall", "shore", "spillway",
    "swamp", "swimming_hole", "tidal_basin", "tidal_river", "urban", "water", "watering_hole", "waterscape",
    "waterway", "wave", "wetland",
    # farmland, gardens and yards
    "arbor", "barnyard", "botanical_garden", "chicken_coop_outdoor", "chicken_farm_outdoor", "corn_field",
    "corral", "cottage_garden", "cultivated", "dairy_outdoor", "farm", "feed_bunk", "field_cultivated",
    "fish_farm", "flowerbed", "formal_garden", "garden", "grape_arbor", "hayfield", "hedge_maze", "hedgerow",
    "hen_yard", "herb_garden", "japanese_garden", "kennel_outdoor", "kraal", "lawn", "orchard", "oyster_farm",
    "pasture", "pinetum", "ranch", "rice_paddy", "rock_garden", "roof_garden", "shrubbery", "tea_garden",
    "terrace_farm", "topiary_garden", "tree_farm", "trellis", "vegetable_garden", "vineyard", "wheat_field",
    "yard", "zen_garden",
    # roads, railways, airfields and bridges
    "access_road", "air_base", "airfield", "airport", "alley", "aqueduct", "bicycle_racks", "bridge",
    "bridle_path", "bus_depot_outdoor", "bus_shelter", "bus_station_outdoor", "bypass", "byroad",
    "carport_outdoor", "chair_lift", "coast_road", "country_road", "crosswalk", "desert_road", "dirt_track",
    "driveway", "field_road", "forest_road", "freeway", "gas_station", "heliport", "highway", "landing_strip",
    "layby", "lift_bridge", "loading_dock", "lock_chamber", "mountain_road", "one-way_street", "overpass",
    "parking_garage_outdoor", "parking_lot", "parkway", "pavement", "piste_road", "pontoon_bridge",
    "rail_outdoor", "railroad_track", "railway_yard", "rest_area", "rest_stop", "road", "road_cut",
    "road_outdoor", "rope_bridge", "roundabout", "runway", "sidewalk", "skywalk_outdoor", "street",
    "streetcar_track", "t-bar_lift", "taxistand", "taxiway", "toll_plaza", "tollbooth", "tollgate",
    "traffic_island", "train_railway", "train_station_outdoor", "train_station_platform", "trestle_bridge",
    "truck_stop", "viaduct", "walkway",
    # harbours and the open decks of ships
    "awning_deck", "boat_deck", "boathouse", "dock", "dry_dock", "floating_dock", "floating_dry_dock",
    "fly_bridge", "gangplank", "gun_deck_outdoor", "harbor", "jetty", "landing_deck", "lido_deck_outdoor",
    "naval_base", "pier", "pilothouse_outdoor", "poop_deck", "promenade_deck", "raft", "shipyard_outdoor",
    "sun_deck", "water_gate", "wharf",
    # towns and building exteriors
    "abbey", "acropolis", "apartment_building_outdoor", "apse_outdoor", "arcade", "arch",
    "archaelogical_excavation", "arrival_gate_outdoor", "auto_mechanics_outdoor", "back_porch",
    "balcony_exterior", "bank_outdoor", "baptistry_outdoor", "barbeque", "barn", "barndoor", "barrack",
    "basilica", "bath_outdoor", "bathhouse_outdoor", "battlement", "bazaar_outdoor", "beach_house",
    "beer_garden", "belfry", "bistro_outdoor", "booth_outdoor", "bow_window_outdoor", "brewery_outdoor",
    "brickyard_outdoor", "building_complex", "building_facade", "cabana", "cabin_outdoor", "campus",
    "caravansary", "casino_outdoor", "castle", "cathedral_outdoor", "cemetery", "chalet", "church_outdoor",
    "circus_tent_outdoor", "city", "cloister_outdoor", "construction_site", "control_tower_outdoor",
    "convenience_store_outdoor", "cottage", "country_house", "courthouse", "courtyard", "customhouse", "dacha",
    "diner_outdoor", "dolmen", "donjon", "doorway_outdoor", "downtown", "east_asia", "embassy",
    "entranceway_outdoor", "entryway_outdoor", "escalator_outdoor", "excavation", "exterior",
    "factory_outdoor", "farm_building", "farmhouse", "fence", "field_tent_outdoor", "fire_escape",
    "fire_station", "flea_market_outdoor", "florist_shop_outdoor", "flying_buttress", "forecourt", "fort",
    "fortress", "foundry_outdoor", "fountain", "front_porch", "garage_outdoor", "gate", "gatehouse",
    "gazebo_exterior", "general_store_outdoor", "geodesic_dome_outdoor", "ghost_town", "granary",
    "greenhouse_outdoor", "guardhouse", "gymnasium_outdoor", "hacienda", "hangar_outdoor", "hospital",
    "hot_tub_outdoor", "hotel_outdoor", "house", "housing_estate", "housing_project", "hunting_lodge_outdoor",
    "hut", "hutment", "igloo", "inn_outdoor", "jacuzzi_outdoor", "jail_outdoor", "kasbah", "kiosk_outdoor",
    "lean-to", "lean-to_tent", "library_outdoor", "lighthouse", "liquor_store_outdoor", "loggia_outdoor",
    "lookout_station_outdoor", "mansard", "mansion", "manufactured_home", "market_outdoor", "mastaba",
    "mausoleum", "medina", "megalith", "menhir", "mens_store_outdoor", "mental_institution_outdoor",
    "mesoamerican", "mews", "military_hut", "mission", "mobile_home", "monastery_outdoor", "mosque_outdoor",
    "motel", "movie_theater_outdoor", "museum_outdoor", "newsstand_outdoor", "nursing_home_outdoor",
    "oast_house", "observatory_outdoor", "office_building", "outbuilding", "outhouse_outdoor", "outside",
    "pagoda", "palace", "party_tent_outdoor", "patio", "pavilion", "pawnshop_outdoor", "phone_booth",
    "pizzeria_outdoor", "planetarium_outdoor", "plantation_house", "plaza", "podium_outdoor", "porch",
    "portico", "postern", "pub_outdoor", "pueblo", "quadrangle", "quonset_hut_outdoor", "ranch_house",
    "residential_neighborhood", "restaurant_patio", "restroom_outdoor", "retaining_wall", "roof", "rubble",
    "ruin", "schoolhouse", "schoolyard", "shed", "shopfront", "shopping_mall_outdoor", "skyscraper", "slum",
    "south_asia", "stage_outdoor", "stone_circle", "strip_mall", "synagogue_outdoor", "temple_east_asia",
    "temple_south_asia", "tent_outdoor", "theater_outdoor", "tower", "town_house", "tract_housing",
    "trailer_park", "tree_house", "veranda", "village", "warehouse_outdoor", "washhouse_outdoor",
    "watchtower", "water_mill", "water_tower", "windmill", "ziggurat",
    # industry, infrastructure and military grounds
    "army_base", "basin_outdoor", "battlefield", "chemical_plant", "drill_rig", "electrical_substation",
    "fire_trench", "garbage_dump", "gas_well", "gasworks", "incinerator_outdoor", "industrial_area",
    "industrial_park", "junk_pile", "junkyard", "landfill", "lumberyard_outdoor", "nuclear_power_plant_outdoor",
    "oil_refinery_outdoor", "oilrig", "power_plant_outdoor", "recycling_plant_outdoor", "steam_plant_outdoor",
    "steel_mill_outdoor", "strip_mine", "trench", "water_treatment_plant_outdoor", "wind_farm",
    # open-air sports and leisure grounds
    "amphitheater", "amusement_park", "aquatic_theater", "athletic_field_outdoor", "auto_racing_paddock",
    "backstage_outdoor", "badminton_court_outdoor", "baseball", "baseball_field", "basketball_court_outdoor",
    "batters_box", "batting_cage_outdoor", "bleachers_outdoor", "boardwalk", "bullring", "campsite",
    "chuck_wagon", "driving_range_outdoor", "dugout", "fairway", "firing_range_outdoor", "football",
    "football_field", "golf_course", "ice_skating_rink_outdoor", "labyrinth_outdoor", "mini_golf_course_outdoor",
    "parade_ground", "park", "picnic_area", "pitchers_mound", "playground", "promenade", "putting_green",
    "racecourse", "raceway", "resort", "riding_arena", "rodeo", "roller_skating_rink_outdoor", "safari_park",
    "sand_trap", "sandbox", "ski_jump", "ski_resort", "ski_slope", "soccer", "stadium_baseball",
    "stadium_football", "stadium_outdoor", "stadium_soccer", "starting_gate", "swimming_pool_outdoor",
    "tennis_court_outdoor", "tiltyard", "track_outdoor", "velodrome_outdoor", "volleyball_court_outdoor",
    "water_park", "wrestling_ring_outdoor", "zoo",
)
# fmt: on
_OUTDOOR = frozenset(OUTDOOR_SCENES)


def is_outdoor(scene: str) -> bool:
    """Whether a sceneCategories.txt category is an outdoor scene (`field/cultivated` reads as `field_cultivated`)."""
    return scene.strip().lower().replace("/", "_") in _OUTDOOR

# The Debian package: `cpack -G DEB` in a build folder (tools/package.sh makes a release one) writes
# hookd_<version>_<arch>.deb with
#   /usr/bin/hookd, /usr/bin/hookctl
#   /lib/systemd/system/hookd.service (ExecStart=/usr/bin/hookd), hookd.socket
#   /etc/hookd/hookd.toml         the options, all commented (a conffile: upgrades keep edits)
#   /usr/share/doc/hookd/         README.md, operations.md, delivery.md, openapi.yaml, copyright
# Depends is computed by dpkg-shlibdeps from the libraries the programs link. The install rules
# exist for this package: their destinations are absolute, the package's own paths.
# hookd-sink and hookd-load stay out: a test receiver and a load generator belong on a developer's
# or a benchmark machine, not with the service (they run from the build folder).

set(hookd_deb_prefix /usr)
set(hookd_deb_units /lib/systemd/system)

install(TARGETS hookd hookctl RUNTIME DESTINATION ${hookd_deb_prefix}/bin)

# The unit in deploy/ starts /usr/local/bin/hookd (the by-hand install it describes); the package's
# starts its own binary. The edit must find its line: a changed ExecStart fails the configure.
file(READ ${PROJECT_SOURCE_DIR}/deploy/hookd.service hookd_unit)
string(FIND "${hookd_unit}" "\nExecStart=/usr/local/bin/hookd " hookd_exec_at)
if(hookd_exec_at EQUAL -1)
  message(FATAL_ERROR "deploy/hookd.service: no 'ExecStart=/usr/local/bin/hookd ' line to point "
                      "at ${hookd_deb_prefix}/bin/hookd")
endif()
string(REPLACE "\nExecStart=/usr/local/bin/hookd " "\nExecStart=${hookd_deb_prefix}/bin/hookd "
               hookd_unit "${hookd_unit}")
file(WRITE ${CMAKE_BINARY_DIR}/deb/hookd.service "${hookd_unit}")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${PROJECT_SOURCE_DIR}/deploy/hookd.service)

install(FILES ${CMAKE_BINARY_DIR}/deb/hookd.service ${PROJECT_SOURCE_DIR}/deploy/hookd.socket
        DESTINATION ${hookd_deb_units})
install(FILES ${PROJECT_SOURCE_DIR}/deploy/hookd.toml DESTINATION /etc/hookd)
install(FILES README.md docs/operations.md docs/delivery.md docs/openapi.yaml
        DESTINATION ${hookd_deb_prefix}/share/doc/hookd)
install(FILES LICENSE DESTINATION ${hookd_deb_prefix}/share/doc/hookd RENAME copyright)

set(CPACK_PACKAGE_NAME hookd)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "self-hosted webhook delivery service")
set(CPACK_PACKAGE_CONTACT "hookd maintainers <maintainers@users.noreply.r-seed-f16455c8.example>")
set(CPACK_PACKAGING_INSTALL_PREFIX ${hookd_deb_prefix})
set(CPACK_STRIP_FILES ON)
set(CPACK_GENERATOR DEB)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The lines below the summary (CPACK_PACKAGE_DESCRIPTION_SUMMARY): one string, not a CMake list.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "hookd keeps organizations, projects, API tokens and webhooks, and delivers events to
webhook endpoints with Standard Webhooks signatures, retries and durable storage
(RocksDB). It runs under systemd with socket activation and a watchdog; hookctl drives
its admin API.")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Deliveries to https:// endpoints verify them against the system's CA store.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "ca-certificates")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/deploy/debian/conffiles ${PROJECT_SOURCE_DIR}/deploy/debian/postinst
    ${PROJECT_SOURCE_DIR}/deploy/debian/prerm ${PROJECT_SOURCE_DIR}/deploy/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
